{#-
  A source table that may not exist yet, e.g. `broker_orders` in a warehouse that has only been
  backtested, or `backtest_fills` in one that has only traded live.

  `source()` is still called, so the manifest (and the Dagster lineage) keeps the dependency.
  At run time the relation is looked up in the catalog: present, it is selected with the
  contract's columns cast to their types; absent, the model is an empty relation with the same
  typed columns, so every downstream model and test runs unchanged (and sees no rows).

  `columns` is the contract as {name: duckdb type}, kept next to the Python one it mirrors.
-#}
{% macro optional_source(source_name, table_name, columns) %}
  {%- set relation = source(source_name, table_name) -%}
  {%- set found = load_relation(relation) if execute else none -%}
  {%- if found is not none %}
    select
      {%- for name, type in columns.items() %}
      cast({{ adapter.quote(name) }} as {{ type }}) as {{ adapter.quote(name) }}{{ "," if not loop.last }}
      {%- endfor %}
    from {{ found }}
  {%- else %}
    {%- if execute %}{{ log("optional_source: " ~ relation ~ " does not exist; empty relation", info=true) }}{% endif %}
    select
      {%- for name, type in columns.items() %}
      cast(null as {{ type }}) as {{ adapter.quote(name) }}{{ "," if not loop.last }}
      {%- endfor %}
    where false
  {%- endif %}
{% endmacro %}
