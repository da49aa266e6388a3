// ES module handler (.mjs in a package without "type").
export const handler = async (event, context) => ({
  kind: 'esm',
  event,
  functionName: context.functionName,
  executionEnv: process.env.AWS_EXECUTION_ENV,
  awsRequestId: context.awsRequestId,
  remainingMs: context.getRemainingTimeInMillis(),
});
