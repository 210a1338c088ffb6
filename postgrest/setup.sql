-- Roles for PostgREST in front of Doppelganger: an authenticator that logs
-- in and switches to the role each request's JWT names, an anonymous role,
-- and one example API role.  Run as a superuser in the database holding
-- the extension, after changing the password.
CREATE ROLE authenticator LOGIN NOINHERIT PASSWORD 'change-me';
CREATE ROLE web_anon NOLOGIN;
CREATE ROLE operator NOLOGIN;
GRANT web_anon, operator TO authenticator;

-- the API: the schema and its functions; the table for direct reads
-- (row-level security limits them to the applications a role may read)
GRANT USAGE ON SCHEMA doppelganger TO web_anon, operator;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA doppelganger TO web_anon, operator;
GRANT SELECT ON doppelganger.things TO web_anon, operator;

-- what each role may do, per application ('*': all)
SELECT doppelganger.dt_grant('default', 'operator', 'write');
SELECT doppelganger.dt_grant('demo', 'web_anon', 'read');
