INSERT INTO feature_registry VALUES
    ($name, $version, $kind, $key, $ts, $columns, $n_rows, $hash, $stage, $path, $description);
