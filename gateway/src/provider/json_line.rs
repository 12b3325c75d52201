//! One JSON object of a CLI's output, read lazily: its members stay unparsed slices of the line
//! until one is asked for.
//!
//! The hub reads a handful of fields of each line the CLIs print (a dozen lines per turn);
//! building a whole `serde_json::Value` for each would allocate every key and string and a tree
//! map per object, only to drop them. Reading is as forgiving as `Value`: a member that is
//! missing or of another type reads as `None`, and never makes the rest of the line unreadable.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object's members, in order, as unparsed slices.
pub struct Obj<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> Obj<'a> {
    /// The object `text` holds; None when it is not one.
    pub fn parse(text: &'a str) -> Option<Obj<'a>> {
        serde_json::from_str(text).ok()
    }

    /// A member as unparsed JSON; the last one when a key repeats, as `Value` reads it.
    pub fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    }

    /// A string member, borrowed from the line unless it holds escapes.
    pub fn str(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.raw(key)?;
        serde_json::from_str::<Text<'a>>(raw.get())
            .ok()
            .map(|t| t.0)
    }

    /// A string member, owned.
    pub fn string(&self, key: &str) -> Option<String> {
        self.str(key).map(Cow::into_owned)
    }

    /// True when `key` is the string `expected`.
    pub fn is(&self, key: &str, expected: &str) -> bool {
        self.str(key).is_some_and(|s| s == expected)
    }

    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key)
    }

    pub fn i64(&self, key: &str) -> Option<i64> {
        self.get(key)
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key)
    }

    /// An object member.
    pub fn obj(&self, key: &str) -> Option<Obj<'a>> {
        Obj::parse(self.raw(key)?.get())
    }

    /// The objects of an array member (other elements are skipped).
    pub fn objs(&self, key: &str) -> Option<Vec<Obj<'a>>> {
        let items: Vec<&'a RawValue> = serde_json::from_str(self.raw(key)?.get()).ok()?;
        Some(
            items
                .into_iter()
                .filter_map(|i| Obj::parse(i.get()))
                .collect(),
        )
    }

    /// Any member, parsed as `T`.
    pub fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_str(self.raw(key)?.get()).ok()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Obj<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = Obj<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Obj<'a>, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Text(k), v)) = map.next_entry::<Text<'a>, &'a RawValue>()? {
                    members.push((k, v));
                }
                Ok(Obj { members })
            }
        }
        d.deserialize_map(Members(std::marker::PhantomData))
    }
}

/// A JSON string, borrowed from the line when it holds no escapes.
#[derive(serde::Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_like_a_value() {
        let line = r#"{"type":"result","n":3,"neg":-2,"ok":true,"s":"a\"b","nested":{"k":"v"},"list":[{"t":1},2,{"t":3}],"type":"last"}"#;
        let o = Obj::parse(line).unwrap();
        assert_eq!(o.str("type").as_deref(), Some("last"));
        assert_eq!(o.u64("n"), Some(3));
        assert_eq!(o.i64("neg"), Some(-2));
        assert_eq!(o.bool("ok"), Some(true));
        assert_eq!(o.string("s").as_deref(), Some("a\"b"));
        assert!(o.obj("nested").unwrap().is("k", "v"));
        let list = o.objs("list").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].u64("t"), Some(3));
        // Missing, or of another type: None, and the rest still reads.
        assert_eq!(o.str("n"), None);
        assert_eq!(o.u64("s"), None);
        assert!(o.obj("list").is_none());
        assert!(o.raw("absent").is_none());
        assert_eq!(o.get::<serde_json::Value>("nested").unwrap()["k"], "v");
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let o = Obj::parse(r#"{"plain":"abc","escaped":"a\nb"}"#).unwrap();
        assert!(matches!(o.str("plain"), Some(Cow::Borrowed("abc"))));
        assert_eq!(o.str("escaped").as_deref(), Some("a\nb"));
    }

    #[test]
    fn only_objects_parse() {
        for bad in ["", "[]", "\"x\"", "{", "{\"a\":}", "null", "{} trailing"] {
            assert!(Obj::parse(bad).is_none(), "{bad}");
        }
    }
}
