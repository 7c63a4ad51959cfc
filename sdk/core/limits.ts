/** At most this many tasks in one BatchSubmit (and one WaitTasks request). */
export const maxBatchSize = 1000;

/** The longest cancel reason (it is stored in the task's record). */
export const maxReasonLength = 4096;

/** Endpoint (worker instance) names are subject tokens. */
export const endpointPattern = /^[A-Za-z0-9_-]{1,64}$/;
