//! SEARCH, SORT and THREAD (RFC 3501 §6.4.4, RFC 4731, RFC 5256, RFC 7162
//! §3.1.5) and the date forms they and APPEND use.
//!
//! Imports the parent's types and lexer. Invariants: NOT/OR and
//! parentheses nest at most `MAX_DEPTH` deep, checked before recursing.

use super::lexer::*;
use super::*;

impl Parser<'_> {
    pub(super) fn search(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let ret = self.return_options()?;
        let save = self.pos;
        if let Ok(a) = self.atom()
            && a.eq_ignore_ascii_case("CHARSET")
        {
            self.sp()?;
            self.charset()?;
            self.sp()?;
        } else {
            self.pos = save;
        }
        let key = self.search_keys()?;
        Ok(Kind::Search(Search { uid, ret, key }))
    }

    /// A SEARCH charset sealmail can match in (UTF-8 and its subset).
    pub(super) fn charset(&mut self) -> R<()> {
        let cs = String::from_utf8_lossy(&self.astring()?).to_ascii_uppercase();
        if cs != "UTF-8" && cs != "US-ASCII" {
            return Err(Error::BadCharset);
        }
        Ok(())
    }

    /// One or more search keys, ANDed.
    pub(super) fn search_keys(&mut self) -> R<SearchKey> {
        let mut keys = vec![self.search_key()?];
        while self.eat(b' ') {
            keys.push(self.search_key()?);
        }
        Ok(if keys.len() == 1 {
            keys.pop().unwrap_or(SearchKey::All)
        } else {
            SearchKey::And(keys)
        })
    }

    /// SORT (RFC 5256 §3): `(criteria) charset keys`.
    /// `RETURN (...) ` before SEARCH or SORT criteria (RFC 4731, RFC 5267,
    /// RFC 9394), with its trailing space; `None` when absent.
    fn return_options(&mut self) -> R<Option<Vec<SearchReturn>>> {
        let save = self.pos;
        match self.atom() {
            Ok(a) if a.eq_ignore_ascii_case("RETURN") => {}
            _ => {
                self.pos = save;
                return Ok(None);
            }
        }
        self.sp()?;
        self.open()?;
        let mut opts = Vec::new();
        while !self.eat(b')') {
            self.eat(b' ');
            opts.push(match self.atom()?.to_ascii_uppercase().as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                "SAVE" => SearchReturn::Save,
                "PARTIAL" => {
                    self.sp()?;
                    let (a, b) = self.partial_range()?;
                    SearchReturn::Partial(a, b)
                }
                o => {
                    return Err(Error::Unknown {
                        what: "SEARCH return option",
                        name: o.into(),
                    });
                }
            });
        }
        self.depth -= 1;
        if opts.is_empty() {
            opts.push(SearchReturn::All);
        }
        self.sp()?;
        Ok(Some(opts))
    }

    /// RFC 9394 §2: `first:last` counting from the start, or `-a:-b` from
    /// the end; both ends on one side, in either order.
    pub(super) fn partial_range(&mut self) -> R<(i64, i64)> {
        let neg = self.eat(b'-');
        let a = i64::from(self.nz_number()?);
        self.expect(b':')?;
        if neg {
            self.expect(b'-')?;
        }
        let b = i64::from(self.nz_number()?);
        let (a, b) = (a.min(b), a.max(b));
        Ok(if neg { (-a, -b) } else { (a, b) })
    }

    pub(super) fn sort(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let ret = self.return_options()?;
        self.open()?;
        let mut keys = Vec::new();
        loop {
            let mut reverse = false;
            let mut name = self.atom()?.to_ascii_uppercase();
            if name == "REVERSE" {
                reverse = true;
                self.sp()?;
                name = self.atom()?.to_ascii_uppercase();
            }
            let by = match name.as_str() {
                "ARRIVAL" => SortBy::Arrival,
                "CC" => SortBy::Cc,
                "DATE" => SortBy::Date,
                "FROM" => SortBy::From,
                "SIZE" => SortBy::Size,
                "SUBJECT" => SortBy::Subject,
                "TO" => SortBy::To,
                "DISPLAYFROM" => SortBy::DisplayFrom,
                "DISPLAYTO" => SortBy::DisplayTo,
                k => {
                    return Err(Error::Unknown {
                        what: "sort key",
                        name: k.into(),
                    });
                }
            };
            keys.push((by, reverse));
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        self.depth -= 1;
        self.sp()?;
        self.charset()?;
        self.sp()?;
        let key = self.search_keys()?;
        Ok(Kind::Sort(Sort {
            uid,
            ret,
            keys,
            key,
        }))
    }

    /// THREAD (RFC 5256 §4): `algorithm charset keys`.
    pub(super) fn thread(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let algorithm = match self.atom()?.to_ascii_uppercase().as_str() {
            "ORDEREDSUBJECT" => ThreadBy::OrderedSubject,
            "REFERENCES" => ThreadBy::References,
            a => {
                return Err(Error::Unknown {
                    what: "threading algorithm",
                    name: a.into(),
                });
            }
        };
        self.sp()?;
        self.charset()?;
        self.sp()?;
        let key = self.search_keys()?;
        Ok(Kind::Thread(Thread {
            uid,
            algorithm,
            key,
        }))
    }

    pub(super) fn search_string(&mut self) -> R<String> {
        self.sp()?;
        self.astring_utf8()
    }

    pub(super) fn search_date(&mut self) -> R<Date> {
        self.sp()?;
        let text = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.take_while(|c| c.is_ascii_alphanumeric() || c == b'-')
                .to_vec()
        };
        parse_date(&text).ok_or(Error::Invalid("bad date (expected e.g. 1-Feb-2024)"))
    }

    pub(super) fn search_key(&mut self) -> R<SearchKey> {
        if self.peek() == Some(b'(') {
            self.open()?;
            let mut keys = vec![self.search_key()?];
            while self.eat(b' ') {
                keys.push(self.search_key()?);
            }
            self.close()?;
            return Ok(if keys.len() == 1 {
                keys.pop().unwrap_or(SearchKey::All)
            } else {
                SearchKey::And(keys)
            });
        }
        if matches!(self.peek(), Some(b'0'..=b'9' | b'*' | b'$')) {
            return Ok(SearchKey::Seq(self.seq_set()?));
        }
        let name = self.atom()?.to_ascii_uppercase();
        let flag = |bit, set| Ok(SearchKey::Flag(bit, set));
        match name.as_str() {
            "ALL" => Ok(SearchKey::All),
            "ANSWERED" => flag(ANSWERED, true),
            "DELETED" => flag(DELETED, true),
            "DRAFT" => flag(DRAFT, true),
            "FLAGGED" => flag(FLAGGED, true),
            "SEEN" => flag(SEEN, true),
            "UNANSWERED" => flag(ANSWERED, false),
            "UNDELETED" => flag(DELETED, false),
            "UNDRAFT" => flag(DRAFT, false),
            "UNFLAGGED" => flag(FLAGGED, false),
            "UNSEEN" => flag(SEEN, false),
            "OLD" => Ok(SearchKey::Not(Box::new(SearchKey::Recent))),
            "RECENT" => Ok(SearchKey::Recent),
            "NEW" => Ok(SearchKey::And(vec![
                SearchKey::Recent,
                SearchKey::Flag(SEEN, false),
            ])),
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                let k = self.atom()?;
                Ok(SearchKey::Keyword(k, name == "KEYWORD"))
            }
            "EMAILID" | "THREADID" => {
                self.sp()?;
                let id = self.atom()?;
                Ok(if name == "EMAILID" {
                    SearchKey::EmailId(id)
                } else {
                    SearchKey::ThreadId(id)
                })
            }
            "SAVEDBEFORE" => Ok(SearchKey::SavedBefore(self.search_date()?)),
            "SAVEDON" => Ok(SearchKey::SavedOn(self.search_date()?)),
            "SAVEDSINCE" => Ok(SearchKey::SavedSince(self.search_date()?)),
            "SAVEDATESUPPORTED" => Ok(SearchKey::SaveDateSupported),
            "OLDER" | "YOUNGER" => {
                self.sp()?;
                let n = u64::from(self.nz_number()?);
                Ok(if name == "OLDER" {
                    SearchKey::Older(n)
                } else {
                    SearchKey::Younger(n)
                })
            }
            "LARGER" | "SMALLER" => {
                self.sp()?;
                let n = self.number64()?;
                Ok(if name == "LARGER" {
                    SearchKey::Larger(n)
                } else {
                    SearchKey::Smaller(n)
                })
            }
            "BEFORE" => Ok(SearchKey::Before(self.search_date()?)),
            "ON" => Ok(SearchKey::On(self.search_date()?)),
            "SINCE" => Ok(SearchKey::Since(self.search_date()?)),
            "SENTBEFORE" => Ok(SearchKey::SentBefore(self.search_date()?)),
            "SENTON" => Ok(SearchKey::SentOn(self.search_date()?)),
            "SENTSINCE" => Ok(SearchKey::SentSince(self.search_date()?)),
            "SUBJECT" => Ok(SearchKey::Subject(self.search_string()?)),
            "FROM" => Ok(SearchKey::From(self.search_string()?)),
            "TO" => Ok(SearchKey::To(self.search_string()?)),
            "CC" => Ok(SearchKey::Cc(self.search_string()?)),
            "BCC" => Ok(SearchKey::Bcc(self.search_string()?)),
            "BODY" => Ok(SearchKey::Body(self.search_string()?)),
            "TEXT" => Ok(SearchKey::Text(self.search_string()?)),
            "HEADER" => {
                let field = self.search_string()?;
                let value = self.search_string()?;
                Ok(SearchKey::Header(field, value))
            }
            "UID" => {
                self.sp()?;
                Ok(SearchKey::Uid(self.seq_set()?))
            }
            "MODSEQ" => {
                self.sp()?;
                if self.peek() == Some(b'"') {
                    // entry name and type: sealmail keeps one modseq per
                    // message, so every entry compares alike.
                    self.quoted()?;
                    self.sp()?;
                    self.atom()?;
                    self.sp()?;
                }
                Ok(SearchKey::ModSeq(self.number64()?))
            }
            "NOT" => {
                self.sp()?;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(Error::TooDeep("search keys"));
                }
                let k = self.search_key()?;
                self.depth -= 1;
                Ok(SearchKey::Not(Box::new(k)))
            }
            "OR" => {
                self.sp()?;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(Error::TooDeep("search keys"));
                }
                let a = self.search_key()?;
                self.sp()?;
                let b = self.search_key()?;
                self.depth -= 1;
                Ok(SearchKey::Or(Box::new(a), Box::new(b)))
            }
            other => Err(Error::Unknown {
                what: "search key",
                name: other.into(),
            }),
        }
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// `1-Feb-1994` (RFC 3501 date).
pub fn parse_date(text: &[u8]) -> Option<Date> {
    let s = std::str::from_utf8(text).ok()?;
    let mut it = s.split('-');
    let day: u8 = it.next()?.trim_start().parse().ok()?;
    let month = it.next()?.to_ascii_uppercase();
    let month = MONTHS.iter().position(|m| *m == month)? as u8 + 1;
    let year: u16 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&day) || !(1000..=9999).contains(&year) {
        return None;
    }
    Some(Date { year, month, day })
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` (RFC 3501 date-time) as Unix time.
pub fn parse_date_time(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text).ok()?;
    let (date, rest) = s.trim_start().split_once(' ')?;
    let d = parse_date(date.as_bytes())?;
    let (time, zone) = rest.split_once(' ')?;
    let t: Vec<u32> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = t.as_slice() else {
        return None;
    };
    if *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    // The zone is `+hhmm` or `-hhmm`, checked byte by byte: slicing the
    // `str` at byte offsets would split a multi-byte character.
    let (sign, zh1, zh2, zm1, zm2) = match zone.as_bytes() {
        [b'+', a, b, c, d] => (1, a, b, c, d),
        [b'-', a, b, c, d] => (-1, a, b, c, d),
        _ => return None,
    };
    let digit = |c: &u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
    let zh = digit(zh1)? * 10 + digit(zh2)?;
    let zm = digit(zm1)? * 10 + digit(zm2)?;
    let days = crate::util::days_from_civil(d.year as i64, d.month as u32, d.day as u32);
    let local = days * 86400 + i64::from(h * 3600 + m * 60 + sec);
    Some(local - sign * (zh * 3600 + zm * 60))
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

    #[test]
    pub(super) fn search_keys_nest_boundedly() {
        let Kind::Search(Search { key, ret, uid }) =
            kind("a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FROM x 1:3) NOT SEEN")
        else {
            panic!()
        };
        assert!(uid);
        assert_eq!(ret, Some(vec![SearchReturn::Min, SearchReturn::Count]));
        assert_eq!(
            key,
            SearchKey::Or(
                Box::new(SearchKey::And(vec![
                    SearchKey::From("x".into()),
                    SearchKey::Seq(SeqSet(vec![(SeqNum::Num(1), SeqNum::Num(3))]))
                ])),
                Box::new(SearchKey::Not(Box::new(SearchKey::Flag(SEEN, true))))
            )
        );
        let deep = format!("a SEARCH {}ALL{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(err(&deep).contains("deeper"));
        let nots = format!("a SEARCH {}ALL", "NOT ".repeat(10_000));
        assert!(err(&nots).contains("deeper"));
        let e = parse(b"a SEARCH CHARSET KOI8-R ALL").unwrap_err();
        assert_eq!(e.error, Error::BadCharset);
        assert!(matches!(
            kind("a SEARCH SINCE 1-Feb-2024 BEFORE \"15-Mar-2024\""),
            Kind::Search(Search { .. })
        ));
        assert!(err("a SEARCH SINCE 31-Foo-2024").contains("date"));
    }

    #[test]
    pub(super) fn dates() {
        assert_eq!(
            parse_date(b"1-Feb-1994"),
            Some(Date {
                year: 1994,
                month: 2,
                day: 1
            })
        );
        assert_eq!(parse_date(b"32-Feb-1994"), None);
        assert_eq!(
            parse_date_time(b"17-Jul-1996 02:44:25 -0700"),
            Some(837596665)
        );
    }

    #[test]
    pub(super) fn append_date_with_a_multibyte_zone_is_refused_not_a_panic() {
        // `é` is two bytes: the zone was sliced inside it before login.
        let cmd = "a APPEND INBOX \"1-Jan-2024 10:00:00 \u{e9}+00\" {1+}\r\nx";
        assert!(parse(cmd.as_bytes()).is_err());
        assert_eq!(
            parse_date_time("1-Jan-2024 10:00:00 \u{e9}+00".as_bytes()),
            None
        );
        assert_eq!(parse_date_time(b"1-Jan-2024 10:00:00 +0x00"), None);
        assert_eq!(parse_date_time(b"1-Jan-2024 10:00:00 +00000"), None);
        assert_eq!(parse_date_time(b"1-Jan-2024 10:00 +0000"), None);
        assert_eq!(
            parse_date_time(b"1-Jan-2024 10:00:00 +0130"),
            Some(1704103200 - 5400)
        );
    }
}
