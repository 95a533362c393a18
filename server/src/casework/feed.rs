//! An agency's event feed: acknowledging how far it has read.

use crate::domain::{AgencyId, Timestamp};
use crate::error::Error;
use crate::store::Transaction;

/// Acknowledges `agency`'s feed up to `cursor` and answers the cursor acknowledged now (an
/// acknowledgement only ever moves forward). A cursor past the feed's end is refused.
pub async fn acknowledge(
    tx: &mut dyn Transaction,
    agency: &AgencyId,
    cursor: u64,
    now: Timestamp,
) -> Result<u64, Error> {
    let end = tx.feed_end(agency).await?;
    if cursor > end {
        return Err(Error::invalid(
            "cursor",
            format!("{cursor} is past the end of your feed (last cursor {end})"),
        ));
    }
    tx.acknowledge_feed(agency, cursor, now).await?;
    Ok(tx.feed_acknowledged(agency).await?)
}
