CREATE TABLE "admin_session" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "key" VARCHAR(64) NOT NULL UNIQUE,
    "user_id" BIGINT NOT NULL,
    "password_fingerprint" VARCHAR(64) NOT NULL,
    "expires_at" DATETIME NOT NULL,
    FOREIGN KEY ("user_id") REFERENCES "account_user" ("id")
);
CREATE INDEX "admin_session_user_id_idx" ON "admin_session" ("user_id");
