-- Hooks and synthetics as SQL functions: checked when configured, run in the
-- caller's transaction as the role that configured them.
SET search_path = doppelganger, public;

CREATE FUNCTION public.celsius_to_f(ctx jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT to_jsonb((ctx #>> '{newState,reportedState,temperature,value}')::numeric * 9 / 5 + 32) $$;
CREATE FUNCTION public.tag_hot(ctx jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    IF (ctx #>> '{newState,reportedState,temperature,value}')::numeric > 30 THEN
        ctx := jsonb_set(ctx, '{newState,metadata,labels}', '{"hot": ""}');
    END IF;
    ctx := jsonb_set(ctx, '{logs}', jsonb_build_array('seen by ' || current_user));
    RETURN ctx;
END $$;
CREATE FUNCTION public.not_jsonb(ctx jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
CREATE FUNCTION public.sleeper(ctx jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT pg_sleep(5)::text::jsonb $$;
CREATE FUNCTION public.failing(ctx jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'broken hook'; END $$;
CREATE TABLE public.secrets (s text);
CREATE FUNCTION public.peek(ctx jsonb) RETURNS jsonb LANGUAGE sql AS $$ SELECT ctx || jsonb_build_object('seen', (SELECT count(*) FROM public.secrets)) $$;

SELECT dt_create_thing('{"metadata": {"application": "default", "name": "fn"},
    "reportedState": {"temperature": {"value": 35}}}') IS NOT NULL;
SELECT dt_set_synthetic_state('default', 'fn', 'fahrenheit', '{"function": "public.celsius_to_f"}') #> '{syntheticState,fahrenheit,value}';
SELECT dt_set_reconciliation('default', 'fn', '{"changed": {"hot": {"function": "tag_hot"}}}')
    #> '{metadata,labels}', dt_get_thing('default', 'fn') #> '{reconciliation,changed,hot,lastLog}'
    = jsonb_build_array('seen by ' || current_user) AS ran_as_caller;
SELECT dt_report_state('default', 'fn', '{"temperature": 10}') #> '{syntheticState,fahrenheit,value}';

-- checked when configured
SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'fn', 'x', '{"function": "public.nothing_here"}')$$);
SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'fn', 'x', '{"function": "public.not_jsonb"}')$$);
SELECT expect_error($$SELECT dt_set_synthetic_state('default', 'fn', 'x', '{"function": "no such.thing.here"}')$$);
-- failures and time limits name the hook
SET doppelganger.hook_timeout = 200;
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'fn', '{"changed": {"slow": {"function": "public.sleeper"}}}')$$);
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'fn', '{"changed": {"broken": {"function": "public.failing"}}}')$$);
RESET doppelganger.hook_timeout;
-- the call that failed left the session usable
SELECT dt_get_thing('default', 'fn') #> '{reconciliation,changed}' ? 'hot' AS hook_still_there;

-- hooks never run with more privilege than the role that configured them
CREATE ROLE dg_hook_author;
GRANT USAGE ON SCHEMA doppelganger TO dg_hook_author;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA doppelganger TO dg_hook_author;
GRANT EXECUTE ON FUNCTION public.peek(jsonb) TO dg_hook_author;
SELECT dt_grant('default', 'dg_hook_author', 'write');
REVOKE EXECUTE ON FUNCTION public.tag_hot(jsonb) FROM PUBLIC;
SET ROLE dg_hook_author;
-- a role cannot configure a function it may not execute
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'fn', '{"changed": {"hot": {"function": "public.tag_hot"}}}')$$);
-- it may configure peek, but peek then runs as dg_hook_author, who cannot read secrets
SELECT expect_error($$SELECT dt_set_reconciliation('default', 'fn', '{"changed": {"spy": {"function": "public.peek"}}}')$$);
RESET ROLE;
-- the superuser's hook kept running as the superuser
SELECT dt_report_state('default', 'fn', '{"temperature": 40}') #> '{reconciliation,changed,hot,lastLog}'
    = jsonb_build_array('seen by ' || current_user) AS still_as_its_author;
-- once allowed, the same hook works for its author, and keeps running as them
GRANT SELECT ON public.secrets TO dg_hook_author;
SET ROLE dg_hook_author;
SELECT dt_set_reconciliation('default', 'fn', '{"changed": {"spy": {"function": "public.peek"}}}') #>> '{reconciliation,changed,spy,owner}';
RESET ROLE;
REVOKE SELECT ON public.secrets FROM dg_hook_author;
SELECT expect_error($$SELECT dt_report_state('default', 'fn', '{"temperature": 41}')$$);
SELECT dt_set_reconciliation('default', 'fn', '{}') IS NOT NULL;
SELECT dt_revoke('default', 'dg_hook_author');
DROP OWNED BY dg_hook_author;
DROP ROLE dg_hook_author;
