-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d),
-- as POSTGRES_USER: the region's server holds the ledger database (POSTGRES_DB) and
-- this one, for the issuer. Each service migrates its own schema at start.
CREATE DATABASE issuer;
