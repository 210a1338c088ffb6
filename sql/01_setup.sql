-- Setup shared by the regression tests: the extension and two helpers.
CREATE EXTENSION doppelganger;
SET search_path = doppelganger, public;

-- The SQLSTATE and message of a statement that should fail.
CREATE FUNCTION public.expect_error(sql text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- A thing with its random and time-dependent parts masked.
CREATE FUNCTION public.mask(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(regexp_replace(j::text,
        '"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"', '"<uuid>"', 'g'),
        '"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}(\.[0-9]+)?Z"', '"<time>"', 'g')::jsonb
$$;

SELECT extname, extversion FROM pg_extension WHERE extname = 'doppelganger';
SELECT count(*) AS dt_functions FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'doppelganger' AND p.proname LIKE 'dt\_%';
