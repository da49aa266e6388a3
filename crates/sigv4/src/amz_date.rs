//! The two date forms SigV4 meets: ISO 8601 basic (`20150830T123600Z`, in `x-amz-date` and
//! `X-Amz-Date`) and the HTTP `Date` header (`Sun, 30 Aug 2015 12:36:00 GMT`).

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

const BASIC: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

const HTTP_DATE: &[FormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Formats as `YYYYMMDD'T'HHMMSS'Z'` in UTC; `None` when the year has no four-digit form.
pub(crate) fn format_basic(t: OffsetDateTime) -> Option<String> {
    let t = t.to_offset(UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// Parses `YYYYMMDD'T'HHMMSS'Z'` exactly (16 characters, UTC).
pub(crate) fn parse_basic(s: &str) -> Option<OffsetDateTime> {
    // The format parser accepts shorter or signed years; SigV4 allows only the fixed-width form.
    if s.len() != 16 || !s.is_ascii() {
        return None;
    }
    PrimitiveDateTime::parse(s, BASIC)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// Parses the IMF-fixdate form of the HTTP `Date` header.
pub(crate) fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(s.trim(), HTTP_DATE)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn basic_round_trips() {
        let t = datetime!(2015-08-30 12:36:00 UTC);
        assert_eq!(format_basic(t).as_deref(), Some("20150830T123600Z"));
        assert_eq!(parse_basic("20150830T123600Z"), Some(t));
    }

    #[test]
    fn basic_formats_in_utc() {
        let t = datetime!(2015-08-31 01:36:00 +13:00);
        assert_eq!(format_basic(t).as_deref(), Some("20150830T123600Z"));
    }

    #[test]
    fn basic_rejects_other_shapes() {
        for bad in [
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20150830T123600+0000",
            "20150830T256000Z",
            "20151330T123600Z",
            "+20150830T12360Z",
            "",
        ] {
            assert_eq!(parse_basic(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_date_parses() {
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            Some(datetime!(2015-08-30 12:36:00 UTC))
        );
        assert_eq!(parse_http_date("Sun, 30 Aug 2015 12:36:00 +0000"), None);
    }
}
