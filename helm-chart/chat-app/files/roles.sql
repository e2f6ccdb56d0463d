-- chatp's PostgreSQL roles: least privilege, none a superuser. Run once, as
-- a superuser, on the database chatp will use: by the chart's PostgreSQL
-- when it creates its database, by hand (or your operator's bootstrap SQL)
-- on a managed or HA PostgreSQL:
--
--   psql -v db=chatdb -v owner=chatp_owner -v owner_password=... \
--        -v app=chatp_app -v app_password=... \
--        -v reader=chatp_reader -v reader_password=... -f roles.sql
--
-- owner   owns the schema and runs the migrations: chat_server's
--         DB_MIGRATION_USER / DB_MIGRATION_PASS (only at start).
-- app     chat_server and chat_admin (DB_USER / DB_PASS): SELECT, INSERT,
--         UPDATE, DELETE on chatp's tables; cannot create, alter or drop
--         anything, nor read other schemas.
-- reader  chat_dashboard: SELECT on chatp's tables, nothing else.
--
-- Tables the owner creates later get the same grants (default privileges);
-- tables that exist already (a database of the Python chatp) are granted
-- here, and must belong to the owner for the migrations:
--   REASSIGN OWNED BY <old owner> TO <owner>;  (as a superuser, in that database)
\set ON_ERROR_STOP on
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE :"app" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE ROLE :"reader" LOGIN PASSWORD :'reader_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"app", :"reader";
\connect :"db"
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app", :"reader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
    GRANT SELECT ON TABLES TO :"reader";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO :"app";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader";
