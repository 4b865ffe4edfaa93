CREATE TABLE IF NOT EXISTS signals_outbox (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    event_id VARCHAR(36) NOT NULL UNIQUE,
    model VARCHAR(255) NOT NULL,
    receiver VARCHAR(255) NOT NULL,
    instance_key VARCHAR(255) NOT NULL,
    part BIGINT NOT NULL,
    event VARCHAR(16) NOT NULL,
    payload LONGTEXT NOT NULL,
    created_at BIGINT NOT NULL,
    state BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    last_error LONGTEXT,
    published_at BIGINT,
    KEY signals_outbox_pending (state, part, id)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS signals_outbox_part (
    part BIGINT PRIMARY KEY,
    owner VARCHAR(255),
    lease_until BIGINT NOT NULL DEFAULT 0
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS signals_inbox (
    event_id VARCHAR(36) PRIMARY KEY,
    receiver VARCHAR(255) NOT NULL,
    handled_at BIGINT NOT NULL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS signals_dead_letter (
    event_id VARCHAR(36) PRIMARY KEY,
    model VARCHAR(255) NOT NULL,
    receiver VARCHAR(255) NOT NULL,
    event VARCHAR(16) NOT NULL,
    payload LONGTEXT NOT NULL,
    error LONGTEXT NOT NULL,
    attempts BIGINT NOT NULL,
    failed_at BIGINT NOT NULL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS signals_outbox_meta (
    name VARCHAR(64) PRIMARY KEY,
    value BIGINT NOT NULL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT IGNORE INTO signals_outbox_meta (name, value) VALUES ('inbox_horizon', 0);
INSERT IGNORE INTO signals_outbox_part (part) VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12), (13), (14), (15);
