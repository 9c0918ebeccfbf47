//! Hand-written SQL that PostgreSQL plans once per connection. diesel's `sql_query` marks itself
//! unsafe to cache, so every call is parsed and planned again (about 2.5 ms for the commit
//! statement); a statement built with [`walk_sql`] and a static `QueryId` is prepared once per
//! connection and then only bound and executed.

use diesel::pg::Pg;
use diesel::query_builder::AstPass;
use diesel::result::{Error, QueryResult};

/// Writes `sql` into `out`, calling `bind(n, out)` where the text has the placeholder `$n`.
/// Placeholders must appear once each, in order `$1`, `$2`, …, because diesel numbers the bind
/// parameters in the order they are pushed.
pub fn walk_sql<'b>(
    out: &mut AstPass<'_, 'b, Pg>,
    sql: &str,
    mut bind: impl FnMut(usize, &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>,
) -> QueryResult<()> {
    let mut rest = sql;
    let mut expected = 1;
    while let Some(at) = rest.find('$') {
        out.push_sql(&rest[..at]);
        let digits = rest[at + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        let n: usize = rest[at + 1..at + 1 + digits]
            .parse()
            .map_err(|_| Error::QueryBuilderError("`$` without a parameter number".into()))?;
        if n != expected {
            return Err(Error::QueryBuilderError(
                format!("parameter ${n} where ${expected} was expected").into(),
            ));
        }
        bind(n, out)?;
        expected += 1;
        rest = &rest[at + 1 + digits..];
    }
    out.push_sql(rest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel::debug_query;
    use diesel::query_builder::{QueryFragment, QueryId};
    use diesel::sql_types::{BigInt, Text};

    use super::*;

    struct Two {
        a: i64,
        b: String,
    }

    impl QueryId for Two {
        type QueryId = Self;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Pg> for Two {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            walk_sql(&mut out, "SELECT $1::bigint, $2 || 'x'", |n, out| match n {
                1 => out.push_bind_param::<BigInt, _>(&self.a),
                _ => out.push_bind_param::<Text, _>(&self.b),
            })
        }
    }

    #[test]
    fn placeholders_become_diesel_binds_in_order() {
        let query = Two {
            a: 7,
            b: "y".into(),
        };
        let shown = debug_query::<Pg, _>(&query).to_string();
        assert!(
            shown.starts_with("SELECT $1::bigint, $2 || 'x' -- binds: [7, \"y\"]"),
            "{shown}"
        );
    }
}
