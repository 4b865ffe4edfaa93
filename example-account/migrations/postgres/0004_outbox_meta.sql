CREATE TABLE IF NOT EXISTS signals_outbox_meta (
    name VARCHAR(64) PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO signals_outbox_meta (name, value) VALUES ('inbox_horizon', 0) ON CONFLICT DO NOTHING;
