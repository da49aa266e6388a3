// CommonJS async handler.
exports.handler = async (event, context) => ({
  kind: 'cjs',
  event,
  functionName: context.functionName,
  executionEnv: process.env.AWS_EXECUTION_ENV,
  awsRequestId: context.awsRequestId,
  remainingMs: context.getRemainingTimeInMillis(),
});
