CREATE TABLE account_user (
    id BIGSERIAL PRIMARY KEY,
    username VARCHAR(150) NOT NULL UNIQUE,
    email VARCHAR(254) NOT NULL DEFAULT '',
    password VARCHAR(255) NOT NULL,
    date_joined TIMESTAMPTZ NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE account_profile (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL UNIQUE REFERENCES account_user (id),
    date_of_birth DATE,
    photo VARCHAR(255) NOT NULL DEFAULT ''
);
