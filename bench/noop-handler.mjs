// A TOLLGATE_HANDLER module whose default handler does nothing: `npm run bench`
// uses it to tell Tollgate's own cost per Submit from the built-in handler's
// (one append to the task log per task).
export default async function noop() {}
