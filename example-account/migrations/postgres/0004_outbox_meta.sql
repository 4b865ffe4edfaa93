CREATE TABLE IF NOT EXISTS signals_outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id VARCHAR(36) NOT NULL UNIQUE,
    model VARCHAR(255) NOT NULL,
    receiver VARCHAR(255) NOT NULL,
    instance_key VARCHAR(255) NOT NULL,
    part BIGINT NOT NULL,
    event VARCHAR(16) NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    state BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    published_at BIGINT
);
CREATE INDEX IF NOT EXISTS signals_outbox_pending ON signals_outbox (state, part, id);
CREATE TABLE IF NOT EXISTS signals_outbox_part (
    part BIGINT PRIMARY KEY,
    owner VARCHAR(255),
    lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS signals_inbox (
    event_id VARCHAR(36) PRIMARY KEY,
    receiver VARCHAR(255) NOT NULL,
    handled_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS signals_dead_letter (
    event_id VARCHAR(36) PRIMARY KEY,
    model VARCHAR(255) NOT NULL,
    receiver VARCHAR(255) NOT NULL,
    event VARCHAR(16) NOT NULL,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    failed_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS signals_outbox_meta (
    name VARCHAR(64) PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO signals_outbox_meta (name, value) VALUES ('inbox_horizon', 0) ON CONFLICT DO NOTHING;
INSERT INTO signals_outbox_part (part) VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12), (13), (14), (15) ON CONFLICT DO NOTHING;
