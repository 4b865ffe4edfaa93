CREATE TABLE account_user (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    username VARCHAR(150) NOT NULL UNIQUE,
    email VARCHAR(254) NOT NULL DEFAULT '',
    password VARCHAR(255) NOT NULL,
    date_joined DATETIME(6) NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TABLE account_profile (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL UNIQUE,
    date_of_birth DATE,
    photo VARCHAR(255) NOT NULL DEFAULT '',
    CONSTRAINT account_profile_user_fk FOREIGN KEY (user_id) REFERENCES account_user (id)
);
