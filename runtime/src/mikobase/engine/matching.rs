//! Which records a select returns, in order: candidates narrowed in SQL (pk, class, a
//! pushed-down equality), examined in result order, paged (decision E14).

use super::problem::Problem;
use super::select::{self, Scope, Select};
use super::store::{Row, Scan};
use super::{class_not_found, Engine};
use crate::mikobase::generated::{Record, SelectResult};

impl Engine {
    /// The records a select returns, in order. Candidates (pk, class and a pushed-down
    /// equality narrow them in SQL) are examined in result order, and examining stops
    /// once `offset + limit` have matched (decision E14).
    pub(crate) fn matching(&self, query: &Select) -> Result<Vec<Row>, Problem> {
        let classes = match &query.classes {
            None => None,
            Some(names) => {
                if let Some(unknown) = names.iter().find(|c| !self.registry.knows(c)) {
                    return Err(class_not_found(unknown));
                }
                Some(self.store.with_subclasses(names)?)
            }
        };
        let root = Scope::root();
        let test = |row: &Row| query.block.matches(&row.bucket, &root);
        let mut page = Page::new(query.offset, query.limit);
        if let Some(pk) = &query.pk {
            let row = self.store.get(pk)?.filter(|row| {
                row.active
                    && classes
                        .as_ref()
                        .is_none_or(|cs| row.classes().iter().any(|c| cs.contains(c)))
            });
            if let Some(row) = row {
                if page.wants() && test(&row)? {
                    page.take(row);
                }
            }
            return Ok(page.rows);
        }
        let equal = query.block.pushable().filter(|e| self.store.pushes(e));
        let sql_order =
            select::sql_sorts(&query.sorts).filter(|order| order.is_empty() || self.store.sorts_in_sql());
        let mut scan = Scan {
            classes: classes.as_deref(),
            equal: equal.as_ref(),
            ..Scan::default()
        };
        if let Some(order) = &sql_order {
            scan.order = order;
            if query.block.only(equal.as_ref()) {
                // SQL decides everything: it pages too.
                scan.page = Some((query.limit, query.offset));
                page = Page::new(0, query.limit);
            }
            if page.wants() {
                self.store.scan(&scan, |row| {
                    if test(&row)? {
                        page.take(row);
                    }
                    Ok(page.wants())
                })?;
            }
            return Ok(page.rows);
        }
        // Sort keys SQL cannot order by: rank the matches (and the records whose
        // evaluation failed) in Rust, then walk them in order.
        let mut ranked: Vec<(usize, Row, Option<Problem>)> = Vec::new();
        self.store.scan(&scan, |row| {
            match test(&row) {
                Ok(true) => ranked.push((ranked.len(), row, None)),
                Ok(false) => {}
                Err(e) => ranked.push((ranked.len(), row, Some(e))),
            }
            Ok(true)
        })?;
        let order = |a: &(usize, Row, Option<Problem>), b: &(usize, Row, Option<Problem>)| {
            select::compare(&a.1.bucket, &b.1.bucket, &query.sorts).then(a.0.cmp(&b.0))
        };
        let wanted = query.limit.map(|l| query.offset.saturating_add(l));
        if let Some(wanted) = wanted.filter(|w| *w < ranked.len()) {
            // Only the first `wanted` can be reached: partition, then sort just those.
            ranked.select_nth_unstable_by(wanted, order);
            ranked.truncate(wanted);
        }
        ranked.sort_by(order);
        for (_, row, problem) in ranked {
            if !page.wants() {
                break;
            }
            if let Some(problem) = problem {
                return Err(problem);
            }
            page.take(row);
        }
        Ok(page.rows)
    }
}

impl Row {
    /// The record as `select` returns it.
    pub(crate) fn into_record(self) -> Record {
        Record {
            pk: self.pk,
            bucket: self.bucket,
            stack: self.stack,
            updated_at: self.updated_at,
        }
    }
}

/// A select's results `{"count", "records"}` (D2), built by moving the rows.
pub(crate) fn select_result(rows: Vec<Row>) -> SelectResult {
    SelectResult {
        count: rows.len() as u64,
        records: rows.into_iter().map(Row::into_record).collect(),
    }
}

/// The records of one page: `offset` matches skipped, at most `limit` kept.
struct Page {
    skip: usize,
    room: usize,
    rows: Vec<Row>,
}

impl Page {
    fn new(offset: usize, limit: Option<usize>) -> Page {
        Page {
            skip: offset,
            room: limit.unwrap_or(usize::MAX),
            rows: Vec::new(),
        }
    }

    /// Whether another match would still be skipped or kept.
    fn wants(&self) -> bool {
        self.room > 0
    }

    fn take(&mut self, row: Row) {
        if self.skip > 0 {
            self.skip -= 1;
        } else if self.room > 0 {
            self.room -= 1;
            self.rows.push(row);
        }
    }
}
