//! Articles about an entity, most salient first: the `l` index, which keeps each entity's
//! articles ordered by how central the entity is to them (then newest first).
//!
//! Answers "the stories that are about Lavrov" rather than "the stories that mention him",
//! which for a name in every wire story are different lists.

use super::{MAX_EXAMINED_PER_PAGE, Page, Store, bad_cursor, keys};
use crate::error::{Error, Invalid, Result};
use crate::model::{Article, ArticleFilter};

impl Store {
    /// Articles mentioning the filter's first entity, most salient there first, that pass
    /// the rest of the filter, continuing after `cursor`. A page examines at most
    /// `MAX_EXAMINED_PER_PAGE` index entries, so it may come back short with a position to
    /// go on from.
    pub fn list_articles_by_salience(
        &self,
        filter: &ArticleFilter,
        page_size: usize,
        cursor: Option<&[u8]>,
    ) -> Result<Page<Article>> {
        let Some(entity_id) = filter.entity_ids.first() else {
            return Err(Error::invalid(
                "filter.entity_ids",
                Invalid::Missing,
                "ordering by salience needs an entity in filter.entity_ids",
            ));
        };
        if let Some(cursor) = cursor
            && keys::split_salience_suffix(cursor).is_none()
        {
            return Err(bad_cursor());
        }
        let prefix = keys::salience_prefix(entity_id);
        let mut low = prefix.clone();
        if let Some(cursor) = cursor {
            low.extend_from_slice(cursor);
            low.push(0);
        }
        let mut items = Vec::new();
        // The last entry examined: where the next page starts after.
        let mut last: Option<Vec<u8>> = None;
        for (examined, entry) in self.keys_in(low..keys::prefix_end(&prefix)).enumerate() {
            if items.len() == page_size || examined == MAX_EXAMINED_PER_PAGE {
                return Ok(Page { items, next: last });
            }
            let key = entry?;
            let suffix = &key[prefix.len()..];
            last = Some(suffix.to_vec());
            let Some((_, article_id)) = keys::split_salience_suffix(suffix) else {
                continue;
            };
            if let Some(article) = self.get_article(article_id)?
                && filter.matches(&article)
            {
                items.push(article);
            }
        }
        Ok(Page { items, next: None })
    }
}
