// What a product id and a user id may be. Both end up inside Redis key names (the product in
// the hash tag `{p:<id>}`, the user in per-user fields and idempotency keys), in URLs and in
// JWT subjects, so every edge that accepts one checks it against these.

export const PRODUCT_ID = /^[A-Za-z0-9_-]{1,64}$/;
export const USER_ID = /^[A-Za-z0-9_.@-]{1,128}$/;
