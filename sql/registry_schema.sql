-- The registry of tables in the catalog (one row per Parquet table / feature group).
CREATE TABLE feature_registry (
    name         VARCHAR PRIMARY KEY,
    version      INTEGER NOT NULL,
    kind         VARCHAR NOT NULL,      -- table | feature_group | prediction
    entity_key   VARCHAR[] NOT NULL,
    timestamp_col VARCHAR,
    columns      VARCHAR[] NOT NULL,
    n_rows       BIGINT NOT NULL,
    content_hash VARCHAR NOT NULL,      -- md5 of the Parquet file, as DVC computes it
    stage        VARCHAR NOT NULL,      -- the DVC stage that produces the file
    path         VARCHAR NOT NULL,      -- relative to the work root
    description  VARCHAR
);
