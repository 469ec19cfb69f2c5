//! Tests that run on both storage engines.

/// Runs each `async fn(Db)` test once per engine, as `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::Db::Sqlite).await;
            }
            #[tokio::test]
            async fn postgres() {
                super::$name(super::Db::Postgres).await;
            }
        })*
    };
}
