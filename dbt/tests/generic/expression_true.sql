{#- Every row satisfies the SQL boolean `expression` (NULL counts as a failure). -#}
{% test expression_true(model, expression, column_name=none) %}
select *
from {{ model }}
where not coalesce(({{ expression }}), false)
{% endtest %}
