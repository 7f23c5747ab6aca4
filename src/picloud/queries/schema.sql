-- name: snapshot_tables
-- Tables of schema picloud.
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'picloud' AND c.relkind IN ('r', 'p') ORDER BY 1;

-- name: snapshot_columns
-- Columns with type, nullability and default.
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = 'picloud' AND c.relkind IN ('r', 'p', 'v') AND a.attnum > 0
   AND NOT a.attisdropped
 ORDER BY c.relname, a.attname;

-- name: snapshot_constraints
-- Constraints by table.
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'picloud' ORDER BY 1, 2;

-- name: snapshot_indexes
-- Index definitions.
SELECT indexdef FROM pg_indexes WHERE schemaname = 'picloud' ORDER BY indexname;

-- name: snapshot_triggers
-- Trigger definitions.
SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'picloud' AND NOT t.tgisinternal ORDER BY c.relname, t.tgname;

-- name: snapshot_views
-- Views and their definitions' digests.
SELECT c.relname, md5(pg_get_viewdef(c.oid, true))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'picloud' AND c.relkind = 'v' ORDER BY 1;

-- name: snapshot_functions
-- Function signatures, result types, volatility and body digests.
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_function_result(p.oid), p.provolatile, md5(p.prosrc)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'picloud' ORDER BY 1;

-- name: objects_without_comment
-- Tables, views and functions of schema picloud that have no COMMENT ON.
SELECT 'table' AS kind, c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'picloud' AND c.relkind IN ('r', 'p', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL
UNION ALL
SELECT 'function', p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'picloud' AND obj_description(p.oid, 'pg_proc') IS NULL
ORDER BY 1, 2;
