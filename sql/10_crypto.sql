-- HMAC-SHA256 and strong random bytes on built-in functions only (no pgcrypto).

CREATE OR REPLACE FUNCTION picloud.random_bytes_32() RETURNS bytea
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    -- Each gen_random_uuid() carries 122 bits from the server's strong RNG.
    SELECT sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                  || uuid_send(gen_random_uuid()))
$$;
COMMENT ON FUNCTION picloud.random_bytes_32() IS
    '32 cryptographically strong random bytes (SHA-256 over three gen_random_uuid values: 366 random bits).';

CREATE OR REPLACE FUNCTION picloud.hmac_sha256(key bytea, message bytea) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    v_key   bytea := hmac_sha256.key;
    v_bits  bit(512);
    v_inner bit(512);
    v_outer bit(512);
BEGIN
    IF length(v_key) > 64 THEN
        v_key := sha256(v_key);
    END IF;
    v_bits := ('x' || rpad(encode(v_key, 'hex'), 128, '0'))::bit(512);
    -- XOR the whole block at once; turn it back into bytes 8 at a time.
    v_inner := v_bits # x'36363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636';
    v_outer := v_bits # x'5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c';
    RETURN sha256(
        int8send(substring(v_outer FROM 1 FOR 64)::bigint)
        || int8send(substring(v_outer FROM 65 FOR 64)::bigint)
        || int8send(substring(v_outer FROM 129 FOR 64)::bigint)
        || int8send(substring(v_outer FROM 193 FOR 64)::bigint)
        || int8send(substring(v_outer FROM 257 FOR 64)::bigint)
        || int8send(substring(v_outer FROM 321 FOR 64)::bigint)
        || int8send(substring(v_outer FROM 385 FOR 64)::bigint)
        || int8send(substring(v_outer FROM 449 FOR 64)::bigint)
        || sha256(
            int8send(substring(v_inner FROM 1 FOR 64)::bigint)
            || int8send(substring(v_inner FROM 65 FOR 64)::bigint)
            || int8send(substring(v_inner FROM 129 FOR 64)::bigint)
            || int8send(substring(v_inner FROM 193 FOR 64)::bigint)
            || int8send(substring(v_inner FROM 257 FOR 64)::bigint)
            || int8send(substring(v_inner FROM 321 FOR 64)::bigint)
            || int8send(substring(v_inner FROM 385 FOR 64)::bigint)
            || int8send(substring(v_inner FROM 449 FOR 64)::bigint)
            || message));
END
$$;
COMMENT ON FUNCTION picloud.hmac_sha256(bytea, bytea) IS
    'HMAC-SHA256 (RFC 2104) on the built-in sha256(); verified against RFC 4231 and Python''s hmac.';

CREATE OR REPLACE FUNCTION picloud.digests_equal(a bytea, b bytea) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- Comparing digests of both sides makes the comparison time independent of
    -- how many leading bytes of the secret values match.
    SELECT a IS NOT NULL AND b IS NOT NULL AND sha256(a) = sha256(b)
$$;
COMMENT ON FUNCTION picloud.digests_equal(bytea, bytea) IS
    'Timing-safe equality for MACs and secrets: compares SHA-256 digests of both values.';
