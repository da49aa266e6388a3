// ES module syntax in a .js file: package.json says "type": "module".
import { basename } from 'node:path';

export const handler = async (event, context) => ({
  kind: 'type-module',
  event,
  file: basename(new URL(import.meta.url).pathname),
  functionName: context.functionName,
  executionEnv: process.env.AWS_EXECUTION_ENV,
  awsRequestId: context.awsRequestId,
  remainingMs: context.getRemainingTimeInMillis(),
});
