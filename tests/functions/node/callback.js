// Callback-style handler: the result arrives through callback() after the handler returned.
exports.handler = (event, context, callback) => {
  setTimeout(() => {
    callback(null, {
      kind: 'callback',
      event,
      functionName: context.functionName,
      executionEnv: process.env.AWS_EXECUTION_ENV,
      awsRequestId: context.awsRequestId,
      remainingMs: context.getRemainingTimeInMillis(),
    });
  }, 20);
};
