CREATE TABLE IF NOT EXISTS signals_outbox_meta (
    name VARCHAR(64) PRIMARY KEY,
    value BIGINT NOT NULL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT IGNORE INTO signals_outbox_meta (name, value) VALUES ('inbox_horizon', 0);
