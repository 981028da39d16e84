//! The HTTP suite against the Redis store on 127.0.0.1:6379. It fails when no Redis server
//! runs there.

idempotent_tests::store_suite!(idempotent_tests::StoreKind::Redis);
