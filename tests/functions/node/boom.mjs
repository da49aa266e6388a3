// An async handler that throws.
export const handler = async () => {
  throw new Error('boom');
};
