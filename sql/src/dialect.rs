//! [`TethysDialect`]: the SQL dialect every statement is parsed in. It is sqlparser's generic
//! dialect plus what Flink SQL has and that one lacks: `FOR SYSTEM_TIME AS OF` after a table (a
//! lookup join). Everything else is the generic dialect's own answer, so the parser treats this
//! dialect as the generic one wherever it asks which dialect it parses.

use std::any::TypeId;

use sqlparser::dialect::{Dialect, GenericDialect};

/// The generic dialect, with table versions (`FOR SYSTEM_TIME AS OF`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TethysDialect;

/// The generic dialect's answers, asked of it.
macro_rules! as_generic {
    ($($name:ident),* $(,)?) => {
        $(
            fn $name(&self) -> bool {
                GenericDialect {}.$name()
            }
        )*
    };
}

impl Dialect for TethysDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        GenericDialect {}.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect {}.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect {}.is_identifier_part(ch)
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    as_generic!(
        supports_map_typedef_with_parentheses,
        supports_unicode_string_literal,
        supports_literal_prefix_in_qualified_name,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_sql_option_without_value,
        supports_explain_with_utility_options,
        supports_exclude_constraint,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_singular_value_keyword,
        supports_comma_join_constraint,
        supports_tilde_like_match_operator,
        supports_aggregate_order_by_with_empty_args,
        supports_in_table_expression,
        supports_comparison_in_between_low_bound,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_multiline_comment_hints,
        supports_copy_from_stdin_data,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_data_type_zerofill_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_table_partitions,
        supports_table_inheritance_markers,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions,
        supports_aliased_function_args,
        supports_alter_column_position,
        supports_add_column_if_not_exists,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::parser::Parser;

    #[test]
    fn a_lookup_join_parses_and_the_rest_as_the_generic_dialect() {
        let sql = "SELECT * FROM s JOIN t FOR SYSTEM_TIME AS OF s.proc AS d ON s.k = d.k";
        let parsed = Parser::parse_sql(&TethysDialect, sql).expect("parses");
        assert!(parsed[0].to_string().contains("FOR SYSTEM_TIME AS OF s.proc"), "{}", parsed[0]);
        for sql in
            ["SELECT a FROM t WHERE b IN (1, 2) GROUP BY a", "SELECT COUNT(*) FILTER (WHERE a > 1) FROM t", "SELECT * FROM t LIMIT 3"]
        {
            let ours = Parser::parse_sql(&TethysDialect, sql).expect("parses").iter().map(|s| s.to_string()).collect::<Vec<_>>();
            let generic = Parser::parse_sql(&GenericDialect {}, sql).expect("parses").iter().map(|s| s.to_string()).collect::<Vec<_>>();
            assert_eq!(ours, generic);
        }
    }
}
