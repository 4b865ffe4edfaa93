CREATE TABLE `admin_session` (
    `id` BIGINT AUTO_INCREMENT PRIMARY KEY,
    `key` VARCHAR(64) NOT NULL UNIQUE,
    `user_id` BIGINT NOT NULL,
    `password_fingerprint` VARCHAR(64) NOT NULL,
    `expires_at` DATETIME(6) NOT NULL,
    FOREIGN KEY (`user_id`) REFERENCES `account_user` (`id`)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
