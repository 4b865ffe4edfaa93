//! Bulk saves and updates: multi-row statements, keys read back, created flags, batched and
//! per-row receivers, chunking, and all-or-nothing failures naming their row.

use signals_core::{
    __private::chunk_rows, Backend, BoxError, Error, ErrorKind, Model, PostSave, PostSaveBatch,
    PreSave, PreSaveBatch, Result,
};
use signals_tests::{count, create_tables, db_test, exec, record, scalar, take_events};

#[derive(Debug, Clone, Model)]
#[model(table = "member")]
#[pre_save(normalize, batch)]
#[pre_save(stamp)]
#[post_save(create_cards, batch)]
#[post_save(log_row)]
struct Member {
    id: Option<i64>,
    #[model(unique)]
    name: String,
    visits: i64,
}

#[derive(Debug, Clone, Model)]
struct Card {
    id: Option<i64>,
    member_id: i64,
}

async fn normalize(rows: &mut [Member], signal: &mut PreSaveBatch<'_>) -> Result<()> {
    record(format!("normalize {}", rows.len()));
    assert_eq!(signal.adding().len(), rows.len());
    for m in rows.iter_mut() {
        m.name = m.name.trim().to_owned();
    }
    Ok(())
}

async fn stamp(m: &mut Member, _: &mut PreSave<'_>) -> Result<()> {
    if m.name == "refuse" {
        return Err(BoxError::from("refused in pre_save").into());
    }
    Ok(())
}

async fn create_cards(rows: &[Member], signal: &mut PostSaveBatch<'_>) -> Result<()> {
    record(format!("create_cards {}", rows.len()));
    let mut cards: Vec<Card> = rows
        .iter()
        .zip(signal.created())
        .filter(|(_, created)| **created)
        .map(|(m, _)| Card {
            id: None,
            member_id: m.id.unwrap(),
        })
        .collect();
    Card::bulk_save(signal.tx(), &mut cards).await?;
    if rows.iter().any(|m| m.name == "batch-fails") {
        return Err(BoxError::from("cards refused").into());
    }
    Ok(())
}

async fn log_row(m: &Member, signal: &mut PostSave<'_>) -> Result<()> {
    if m.name.starts_with("log") {
        record(format!("log {} {}", m.name, signal.created()));
    }
    Ok(())
}

const SCHEMA: &str = "
CREATE TABLE member (id {pk}, name {text} NOT NULL UNIQUE, visits BIGINT NOT NULL);
CREATE TABLE card (id {pk}, member_id BIGINT NOT NULL)";

fn members(names: &[&str]) -> Vec<Member> {
    names
        .iter()
        .map(|n| Member {
            id: None,
            name: (*n).to_owned(),
            visits: 0,
        })
        .collect()
}

db_test!(async fn bulk_save_inserts_reads_keys_back_and_sends_batches(db) {
    create_tables(&db, SCHEMA).await;
    let mut rows = members(&[" a ", "b", "c"]);
    let saved = Member::bulk_save(&db, &mut rows).await.unwrap();
    assert_eq!(saved.created(), [true, true, true]);
    assert_eq!((saved.inserted(), saved.updated()), (3, 0));
    assert_eq!(take_events(), ["normalize 3", "create_cards 3"]);
    assert_eq!(rows[0].name, "a", "pre_save changed the row before the write");
    for row in &rows {
        let stored = Member::get(&db, row.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(stored.name, row.name, "each key read back belongs to its own row");
    }
    assert_eq!(count(&db, "card").await, 3);
    let ids: Vec<i64> = rows.iter().map(|r| r.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
});

db_test!(async fn mixed_bulks_update_rows_with_keys_and_insert_the_rest(db) {
    create_tables(&db, SCHEMA).await;
    let mut first = members(&["log-old", "x"]);
    Member::bulk_save(&db, &mut first).await.unwrap();
    take_events();
    let mut old = first[0].clone();
    old.visits = 5;
    let mut ghost = Member { id: Some(9_000), name: "log-ghost".into(), visits: 1 };
    ghost.visits = 1;
    let mut rows = vec![members(&["log-new"]).remove(0), old, ghost];
    let saved = Member::bulk_save(&db, &mut rows).await.unwrap();
    assert_eq!(saved.created(), [true, false, true], "a key without a row is inserted with it");
    assert_eq!(rows[2].id, Some(9_000));
    assert_eq!(
        take_events(),
        ["normalize 3", "create_cards 3", "log log-new true", "log log-old false", "log log-ghost true"],
        "batched receivers once per chunk, per-row receivers once per row, in declaration order"
    );
    assert_eq!(Member::get(&db, first[0].id.unwrap()).await.unwrap().unwrap().visits, 5);
    assert_eq!(count(&db, "card").await, 4, "cards for the created rows only");
});

db_test!(async fn a_single_save_sends_batched_receivers_a_batch_of_one(db) {
    create_tables(&db, SCHEMA).await;
    let mut m = members(&["log-one"]).remove(0);
    assert!(m.save(&db).await.unwrap().created());
    assert_eq!(take_events(), ["normalize 1", "create_cards 1", "log log-one true"]);
    assert_eq!(count(&db, "card").await, 1);
});

db_test!(async fn chunks_split_at_the_limit(db) {
    create_tables(&db, SCHEMA).await;
    let limit = chunk_rows::<Member>(db.backend());
    for n in [limit, limit + 1] {
        let names: Vec<String> = (0..n).map(|i| format!("m{n}-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut rows = members(&names);
        let saved = Member::bulk_save(&db, &mut rows).await.unwrap();
        assert_eq!(saved.inserted(), n);
        let expected: Vec<String> = if n == limit {
            vec![format!("normalize {limit}"), format!("create_cards {limit}")]
        } else {
            vec![
                format!("normalize {limit}"),
                format!("create_cards {limit}"),
                "normalize 1".into(),
                "create_cards 1".into(),
            ]
        };
        assert_eq!(take_events(), expected);
        for row in [&rows[0], &rows[n - 1]] {
            let stored = Member::get(&db, row.id.unwrap()).await.unwrap().unwrap();
            assert_eq!(stored.name, row.name);
        }
    }
    assert_eq!(count(&db, "card").await, (2 * limit + 1) as i64);
});

/// A failure anywhere writes nothing, clears the keys it had assigned and names the row.
async fn fails_at(db: &signals_core::Db, names: &[&str], row: Option<usize>, kind: ErrorKind) {
    let mut rows = members(names);
    let err = Member::bulk_save(db, &mut rows).await.unwrap_err();
    take_events();
    match &err {
        Error::Bulk {
            model,
            operation,
            row: r,
            ..
        } => {
            assert_eq!((*model, *operation, *r), ("Member", "save", row), "{err}");
        }
        other => panic!("not a bulk error: {other}"),
    }
    assert_eq!(err.kind(), kind, "{err}");
    assert!(
        rows.iter().all(|r| r.id.is_none()),
        "keys of rolled-back rows are cleared"
    );
    assert_eq!(count(db, "member").await, 1, "nothing of the bulk was kept");
    assert_eq!(count(db, "card").await, 1);
}

db_test!(async fn all_or_nothing_on_a_failure_at_the_first_a_middle_and_the_last_row(db) {
    create_tables(&db, SCHEMA).await;
    Member::bulk_save(&db, &mut members(&["taken"])).await.unwrap();
    take_events();
    // A unique violation: the multi-row statement fails, the row is found.
    fails_at(&db, &["taken", "b", "c"], Some(0), ErrorKind::UniqueViolation).await;
    fails_at(&db, &["a", "taken", "c"], Some(1), ErrorKind::UniqueViolation).await;
    fails_at(&db, &["a", "b", "taken"], Some(2), ErrorKind::UniqueViolation).await;
    // Two rows of one statement clash with each other: the second is named.
    fails_at(&db, &["a", "dup", "dup"], Some(2), ErrorKind::UniqueViolation).await;
    // A per-row receiver.
    fails_at(&db, &["refuse", "b", "c"], Some(0), ErrorKind::Other).await;
    fails_at(&db, &["a", "refuse", "c"], Some(1), ErrorKind::Other).await;
    fails_at(&db, &["a", "b", "refuse"], Some(2), ErrorKind::Other).await;
    // A batched receiver: the batch is named.
    fails_at(&db, &["a", "batch-fails"], None, ErrorKind::Other).await;

    let mut rows = members(&["taken", "b"]);
    let err = Member::bulk_save(&db, &mut rows).await.unwrap_err();
    assert!(err.to_string().starts_with("bulk save of `Member` failed at row 0"), "{err}");
    // The connection is still usable, and so is a transaction the bulk failed in.
    let mut tx = db.begin().await.unwrap();
    assert!(Member::bulk_save(&mut tx, &mut members(&["taken"])).await.is_err());
    Member::bulk_save(&mut tx, &mut members(&["after"])).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&db, "member").await, 2);
});

db_test!(async fn bulk_update_writes_only_the_fields_named(db) {
    create_tables(&db, SCHEMA).await;
    let mut rows = members(&["p", "q"]);
    Member::bulk_save(&db, &mut rows).await.unwrap();
    take_events();
    for row in &mut rows {
        row.visits = 7;
        row.name.push_str("-unsaved");
    }
    let saved = Member::bulk_update(&db, &mut rows, Member::VISITS).await.unwrap();
    assert_eq!(saved.created(), [false, false]);
    assert_eq!(take_events(), ["normalize 2", "create_cards 2"]);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM member WHERE visits = 7").await, 2);
    assert_eq!(count(&db, "card").await, 2, "no card for updated rows");
    let stored = Member::get(&db, rows[0].id.unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.name, "p");

    // A row without a key, or without a row: nothing is written.
    let mut mixed = vec![rows[0].clone(), members(&["new"]).remove(0)];
    mixed[0].visits = 100;
    let err = Member::bulk_update(&db, &mut mixed, Member::VISITS).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSaved, "{err}");
    assert!(matches!(err, Error::Bulk { row: Some(1), .. }), "{err}");
    let mut gone = vec![rows[0].clone(), Member { id: Some(77_777), name: "g".into(), visits: 1 }];
    gone[0].visits = 100;
    let err = Member::bulk_update(&db, &mut gone, Member::VISITS).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(matches!(err, Error::Bulk { row: Some(1), key: Some(ref k), .. } if k == "77777"), "{err}");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM member WHERE visits = 7").await, 2);
    take_events();
});

db_test!(async fn an_empty_bulk_does_nothing(db) {
    create_tables(&db, SCHEMA).await;
    let saved = Member::bulk_save(&db, &mut []).await.unwrap();
    assert!(saved.created().is_empty());
    assert!(take_events().is_empty());
    let _ = Backend::Sqlite;
});

#[derive(Debug, Clone, Model)]
#[pre_delete(count_teams, batch)]
#[post_delete(log_team)]
struct Team {
    id: Option<i64>,
    name: String,
}

#[derive(Debug, Clone, Model)]
#[pre_delete(refuse_captain)]
#[post_delete(count_players, batch)]
struct Player {
    id: Option<i64>,
    #[model(foreign_key = Team, on_delete = cascade)]
    team_id: i64,
    name: String,
}

/// No receivers, nothing below: deleted with one statement, never read.
#[derive(Debug, Clone, Model)]
struct Badge {
    id: Option<i64>,
    #[model(foreign_key = Player, on_delete = cascade)]
    player_id: i64,
}

#[derive(Debug, Clone, Model)]
struct Sponsor {
    id: Option<i64>,
    #[model(foreign_key = Team, on_delete = set_null)]
    team_id: Option<i64>,
}

async fn count_teams(rows: &[Team], signal: &mut signals_core::PreDeleteBatch<'_>) -> Result<()> {
    record(format!("pre teams {} from {}", rows.len(), signal.origin()));
    if rows.iter().any(|t| t.name == "batch-refuses") {
        return Err(BoxError::from("not these teams").into());
    }
    Ok(())
}

async fn log_team(team: &Team, _: &mut signals_core::PostDelete<'_>) -> Result<()> {
    record(format!("post team {}", team.name));
    Ok(())
}

async fn refuse_captain(player: &Player, _: &mut signals_core::PreDelete<'_>) -> Result<()> {
    if player.name == "captain" {
        return Err(BoxError::from("the captain stays").into());
    }
    Ok(())
}

async fn count_players(
    rows: &[Player],
    signal: &mut signals_core::PostDeleteBatch<'_>,
) -> Result<()> {
    record(format!(
        "post players {} from {}",
        rows.len(),
        signal.origin()
    ));
    Ok(())
}

const TEAMS: &str = "
CREATE TABLE team (id {pk}, name {text} NOT NULL);
CREATE TABLE player (id {pk}, team_id BIGINT NOT NULL, name {text} NOT NULL);
CREATE TABLE badge (id {pk}, player_id BIGINT NOT NULL);
CREATE TABLE sponsor (id {pk}, team_id BIGINT)";

/// Teams named `names`, each with two players (one named `captain` when the team's name
/// says so), each player with a badge, and a sponsor per team.
async fn teams(db: &signals_core::Db, names: &[&str]) -> Vec<Team> {
    let mut teams: Vec<Team> = names
        .iter()
        .map(|n| Team {
            id: None,
            name: (*n).to_owned(),
        })
        .collect();
    Team::bulk_save(db, &mut teams).await.unwrap();
    let mut players = Vec::new();
    for t in &teams {
        for p in ["p1", "p2"] {
            let name = if t.name.contains("captain") && p == "p2" {
                "captain"
            } else {
                p
            };
            players.push(Player {
                id: None,
                team_id: t.id.unwrap(),
                name: name.into(),
            });
        }
    }
    Player::bulk_save(db, &mut players).await.unwrap();
    let mut badges: Vec<Badge> = players
        .iter()
        .map(|p| Badge {
            id: None,
            player_id: p.id.unwrap(),
        })
        .collect();
    Badge::bulk_save(db, &mut badges).await.unwrap();
    let mut sponsors: Vec<Sponsor> = teams
        .iter()
        .map(|t| Sponsor {
            id: None,
            team_id: t.id,
        })
        .collect();
    Sponsor::bulk_save(db, &mut sponsors).await.unwrap();
    take_events();
    teams
}

db_test!(async fn bulk_delete_cascades_level_by_level(db) {
    create_tables(&db, TEAMS).await;
    let mut all = teams(&db, &["a", "b", "c"]).await;
    let deleted = Team::bulk_delete(&db, &mut all[..2]).await.unwrap();
    assert_eq!(deleted.per_model(), [("Badge", 4), ("Player", 4), ("Team", 2)]);
    assert_eq!(
        take_events(),
        ["pre teams 2 from Team", "post players 4 from Team", "post team a", "post team b"],
        "the cascade's batch first (one for both teams' players), then the teams"
    );
    assert_eq!(all[0].id, None, "keys of deleted rows are cleared");
    assert_eq!(count(&db, "team").await, 1);
    assert_eq!(count(&db, "player").await, 2);
    assert_eq!(count(&db, "badge").await, 2);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM sponsor WHERE team_id IS NULL").await, 2);

    // Query::delete goes the same way.
    let deleted = Team::query().delete(&db).await.unwrap();
    assert_eq!(deleted.total(), 1 + 2 + 2);
    assert_eq!(take_events(), ["pre teams 1 from Team", "post players 2 from Team", "post team c"]);
});

db_test!(async fn bulk_delete_is_all_or_nothing_and_names_the_row(db) {
    create_tables(&db, TEAMS).await;
    let mut all = teams(&db, &["a", "b", "c"]).await;
    let before = (count(&db, "team").await, count(&db, "player").await, count(&db, "badge").await);

    // A receiver of the batch refuses.
    all[1].name = "batch-refuses".into();
    let err = Team::bulk_delete(&db, &mut all).await.unwrap_err();
    assert!(matches!(err, Error::Bulk { row: None, rows: ref r, .. } if *r == (0..3)), "{err}");
    all[1].name = "b".into();

    // A row that is gone: named, and nothing else is deleted.
    let mut gone = all[2].clone();
    gone.delete(&db).await.unwrap();
    let mut rows = all.clone();
    let err = Team::bulk_delete(&db, &mut rows).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(matches!(err, Error::Bulk { row: Some(2), .. }), "{err}");
    assert!(rows[0].id.is_some(), "keys stay when nothing was deleted");
    assert_eq!(count(&db, "team").await, before.0 - 1);
    assert_eq!(count(&db, "badge").await, before.2 - 2);
    take_events();
    let _ = before.1;
});

db_test!(async fn a_cascaded_receiver_failure_rolls_back_the_bulk_delete(db) {
    create_tables(&db, TEAMS).await;
    let mut all = teams(&db, &["a", "has captain", "c"]).await;
    let err = Team::bulk_delete(&db, &mut all).await.unwrap_err();
    assert!(err.to_string().contains("the captain stays"), "{err}");
    assert_eq!(err.receiver_chain(), [("Player", signals_core::SignalKind::PreDelete, "refuse_captain")]);
    assert_eq!(count(&db, "team").await, 3);
    assert_eq!(count(&db, "player").await, 6);
    assert_eq!(count(&db, "badge").await, 6);
    take_events();
});

db_test!(async fn bulk_delete_batches_split_at_the_chunk_size(db) {
    create_tables(&db, TEAMS).await;
    let n = signals_core::MAX_CHUNK_ROWS + 1;
    let mut all: Vec<Team> = (0..n).map(|i| Team { id: None, name: format!("t{i}") }).collect();
    Team::bulk_save(&db, &mut all).await.unwrap();
    let deleted = Team::bulk_delete(&db, &mut all).await.unwrap();
    assert_eq!(deleted.total(), n as u64);
    let events = take_events();
    assert_eq!(
        &events[..2],
        [format!("pre teams {} from Team", n - 1), "pre teams 1 from Team".to_owned()]
    );
    assert_eq!(events.len(), 2 + n, "then one post_delete per row");
    assert_eq!(count(&db, "team").await, 0);
});

db_test!(async fn a_cancelled_bulk_save_writes_all_or_nothing(db) {
    create_tables(&db, SCHEMA).await;
    let n = 2_500;
    for micros in [0u64, 200, 1_000, 3_000, 10_000] {
        let names: Vec<String> = (0..n).map(|i| format!("c{micros}-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut rows = members(&names);
        let mut tx = db.begin().await.unwrap();
        let before = count(&db, "member").await;
        let bulk = Member::bulk_save(&mut tx, &mut rows);
        let finished = tokio::time::timeout(std::time::Duration::from_micros(micros), bulk)
            .await
            .is_ok();
        // The transaction holds all of the bulk or none of it. It is still usable, except on
        // MySQL after a cancel in the middle of a statement: then it is rolled back whole.
        let after = Member::bulk_save(&mut tx, &mut members(&[&format!("after{micros}")])).await;
        let committed = match after {
            Ok(_) => {
                tx.commit().await.unwrap();
                1
            }
            Err(err) => {
                assert_eq!(err.kind(), ErrorKind::Transaction, "{err}");
                assert_eq!(db.backend(), Backend::MySql, "{err}");
                0
            }
        };
        let added = count(&db, "member").await - before - committed;
        assert!(added == 0 || added == n as i64, "{added} rows after a cancel at {micros}µs");
        if committed == 1 {
            assert_eq!(added == n as i64, finished, "rows exactly when the bulk finished");
        }
        take_events();
    }
});

/// A member whose batch holds a name starting with "slow" makes the batched receiver wait
/// (long past the test's timeout), so a bulk can be cancelled in the chunk of its choice.
#[derive(Debug, Clone, Model)]
#[model(table = "guest")]
#[post_save(slow_batch, batch)]
struct Guest {
    id: Option<i64>,
    name: String,
    visits: i64,
}

async fn slow_batch(rows: &[Guest], _: &mut PostSaveBatch<'_>) -> Result<()> {
    if rows.iter().any(|g| g.name.starts_with("slow")) {
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
    Ok(())
}

// Item 1 of the third reliability round: a bulk cancelled in its first, middle or last chunk
// leaves no row and no key on any instance, those of the chunks written before the cancel
// included; a retry next to a row saved in between inserts every row and overwrites none
// (SQLite's key counter rolls back with the transaction, so a kept key named that row).
db_test!(async fn a_cancelled_bulk_save_clears_every_key_it_assigned(db) {
    create_tables(&db, "CREATE TABLE guest (id {pk}, name {text} NOT NULL, visits BIGINT NOT NULL)").await;
    let size = chunk_rows::<Guest>(db.backend());
    let n = 3 * size;
    for chunk in 0..3 {
        let mut rows: Vec<Guest> = (0..n)
            .map(|i| Guest { id: None, name: format!("g{chunk}-{i}"), visits: 0 })
            .collect();
        rows[chunk * size].name = format!("slow{chunk}");
        let bulk = Guest::bulk_save(&db, &mut rows);
        let res = tokio::time::timeout(std::time::Duration::from_secs(2), bulk).await;
        assert!(res.is_err(), "chunk {chunk}: the bulk was cancelled");
        assert_eq!(count(&db, "guest").await, 0, "chunk {chunk}: nothing written");
        let kept: Vec<usize> = (0..n).filter(|&i| rows[i].id.is_some()).collect();
        assert!(kept.is_empty(), "chunk {chunk}: {} instances kept keys, first {:?}", kept.len(), kept.first());

        // Another user saves a row meanwhile; the retry must not touch it.
        let mut other = Guest { id: None, name: format!("other{chunk}"), visits: 7 };
        other.save(&db).await.unwrap();
        rows[chunk * size].name = format!("fast{chunk}");
        let saved = Guest::bulk_save(&db, &mut rows).await.unwrap();
        assert_eq!((saved.inserted(), saved.updated()), (n, 0), "chunk {chunk}");
        let stored = Guest::get(&db, other.id.unwrap()).await.unwrap().unwrap();
        assert_eq!((stored.name.as_str(), stored.visits), (other.name.as_str(), 7));
        assert_eq!(count(&db, "guest").await, n as i64 + 1);
        exec(&db, "DELETE FROM guest").await;
    }
    // Cancelled inside a caller's transaction, the savepoint is undone and the keys go too.
    let mut rows: Vec<Guest> = (0..n)
        .map(|i| Guest { id: None, name: format!("t-{i}"), visits: 0 })
        .collect();
    rows[size].name = "slow-tx".into();
    let mut tx = db.begin().await.unwrap();
    let bulk = Guest::bulk_save(&mut tx, &mut rows);
    assert!(tokio::time::timeout(std::time::Duration::from_secs(2), bulk).await.is_err());
    assert!(rows.iter().all(|g| g.id.is_none()), "keys cleared inside a transaction too");
    drop(tx);
});

db_test!(async fn concurrent_bulks_of_overlapping_rows_lose_nothing(db) {
    create_tables(&db, SCHEMA).await;
    let mut rows = members(&["o1", "o2", "o3", "o4"]);
    Member::bulk_save(&db, &mut rows).await.unwrap();
    take_events();
    let mut tasks = Vec::new();
    for t in 0..4i64 {
        let db = db.clone();
        let mut mine = rows.clone();
        tasks.push(tokio::spawn(signals_tests::with_events(async move {
            for round in 0..5 {
                for m in &mut mine {
                    m.visits = t * 100 + round;
                }
                loop {
                    match Member::bulk_update(&db, &mut mine, Member::VISITS).await {
                        Ok(_) => break,
                        Err(err) if err.is_retryable() => continue,
                        Err(err) => panic!("{err}"),
                    }
                }
            }
        })));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Each bulk was atomic: every row holds the last round of one and the same writer.
    let values: Vec<i64> = {
        let mut v = Vec::new();
        for r in &rows {
            v.push(Member::get(&db, r.id.unwrap()).await.unwrap().unwrap().visits);
        }
        v
    };
    assert!(values.iter().all(|v| v % 100 == 4), "{values:?}");
    assert_eq!(count(&db, "member").await, 4);
});

db_test!(async fn bulk_updates_name_the_row_a_constraint_refuses_and_let_the_last_instance_win(db) {
    create_tables(&db, SCHEMA).await;
    let mut rows = members(&["u1", "u2", "u3"]);
    Member::bulk_save(&db, &mut rows).await.unwrap();
    take_events();
    // A unique violation in the multi-row UPDATE: the row is found and named.
    let mut changed = rows.clone();
    changed[2].name = "u1".into();
    let err = Member::bulk_save(&db, &mut changed).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UniqueViolation, "{err}");
    assert!(matches!(err, Error::Bulk { row: Some(2), key: Some(_), .. }), "{err}");
    let err = Member::bulk_update(&db, &mut changed, Member::NAME).await.unwrap_err();
    assert!(matches!(err, Error::Bulk { row: Some(2), .. }), "{err}");
    take_events();
    // The same row twice: the last instance wins, as in a loop of saves.
    let mut twice = vec![rows[0].clone(), rows[0].clone()];
    twice[0].visits = 1;
    twice[1].visits = 2;
    Member::bulk_update(&db, &mut twice, Member::VISITS).await.unwrap();
    assert_eq!(Member::get(&db, rows[0].id.unwrap()).await.unwrap().unwrap().visits, 2);
    Member::bulk_save(&db, &mut twice).await.unwrap();
    assert_eq!(Member::get(&db, rows[0].id.unwrap()).await.unwrap().unwrap().visits, 2);
    take_events();
    // Many rows: UPDATE statements split under the parameter limit.
    let names: Vec<String> = (0..2_500).map(|i| format!("many{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut many = members(&names);
    Member::bulk_save(&db, &mut many).await.unwrap();
    for (i, m) in many.iter_mut().enumerate() {
        m.visits = i as i64;
    }
    Member::bulk_update(&db, &mut many, Member::VISITS).await.unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM member WHERE name LIKE 'many%' AND visits > 0").await, 2_499);
    take_events();
});
