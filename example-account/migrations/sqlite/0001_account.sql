CREATE TABLE account_user (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL DEFAULT '',
    password TEXT NOT NULL,
    date_joined DATETIME NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT 1
);
CREATE TABLE account_profile (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL UNIQUE REFERENCES account_user (id),
    date_of_birth DATE,
    photo TEXT NOT NULL DEFAULT ''
);
