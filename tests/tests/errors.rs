//! Errors a caller can act on: credentials never printed, the kinds that tell what to do
//! (retry, check whether a commit happened), misuse refused before anything is sent.
#![allow(clippy::unwrap_used)]

use signals_core::{Db, ErrorKind};

/// Every credential form the drivers accept, in URLs of servers that refuse the connection.
#[tokio::test]
async fn connection_errors_never_print_a_password() {
    let urls = [
        "postgres://bob:hunter2@127.0.0.1:1/app",
        "postgres://bob@127.0.0.1:1/app?password=hunter2",
        "postgresql:///app?host=127.0.0.1&port=1&user=bob&password=hunter2",
        "postgresql://127.0.0.1:1/app?user=bob&password=hunter2&sslmode=disable",
        "mysql://bob:hunter2@127.0.0.1:1/app",
        "mariadb://bob:hunter2@127.0.0.1:1/app",
        "mysql://bob:hun@ter2@127.0.0.1:1/app",
        "postgres://bob:hunter2@127.0.0.1:notaport/app",
        "oracle://bob:hunter2@127.0.0.1/app?password=hunter2",
    ];
    for url in urls {
        let err = Db::connect(url).await.unwrap_err();
        let shown = format!("{err} / {err:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("ter2"),
            "{url} shows its password: {shown}"
        );
        assert!(
            matches!(err.kind(), ErrorKind::Connection | ErrorKind::Config),
            "{url}: {err}"
        );
    }
}
