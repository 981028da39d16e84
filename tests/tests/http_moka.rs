//! The HTTP suite against the in-process moka store.

idempotent_tests::store_suite!(idempotent_tests::StoreKind::Moka);
