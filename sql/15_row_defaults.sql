-- A create function writes its row in one INSERT, and a value its caller did not give
-- takes the column's DEFAULT, so each default is written once, in the table's DDL. The
-- INSERT is composed with DEFAULT in the place of every value not given (only the
-- placeholders vary; the values are bound with USING).

CREATE OR REPLACE FUNCTION picloud.value_or_default(given anyelement, param integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value_or_default.given IS NULL THEN 'DEFAULT'
                ELSE '$' || value_or_default.param END
$$;
COMMENT ON FUNCTION picloud.value_or_default(anyelement, integer) IS
    'What an INSERT composed by a create function puts in a column''s place: the placeholder $param when a value is given, else DEFAULT (the column''s own).';
