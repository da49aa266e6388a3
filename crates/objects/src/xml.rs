//! Just enough XML for S3's request documents (a small element tree read with `quick-xml`) and
//! its answers (an escaping writer).

use quick_xml::events::Event;

use crate::error::S3Error;

/// An element: its local name, text and children.
#[derive(Debug, Default, Clone)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document into its root element; anything malformed is S3's `MalformedXML`.
pub fn parse(body: &[u8]) -> Result<Element, S3Error> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<Element> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|_| S3Error::malformed_xml())?;
        match ev {
            Event::Start(s) => {
                if stack.len() > 32 {
                    return Err(S3Error::malformed_xml());
                }
                stack.push(Element {
                    name: String::from_utf8_lossy(s.local_name().as_ref()).into_owned(),
                    ..Default::default()
                });
            }
            Event::Empty(s) => {
                let el = Element {
                    name: String::from_utf8_lossy(s.local_name().as_ref()).into_owned(),
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let t = t.xml10_content().map_err(|_| S3Error::malformed_xml())?;
                    top.text.push_str(&t);
                }
            }
            // Entity and character references arrive as events of their own between the text
            // around them; only XML's predefined entities exist in S3's documents.
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    if let Some(c) = r.resolve_char_ref().map_err(|_| S3Error::malformed_xml())? {
                        top.text.push(c);
                    } else {
                        let name = r.decode().map_err(|_| S3Error::malformed_xml())?;
                        let v = quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(S3Error::malformed_xml)?;
                        top.text.push_str(v);
                    }
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(S3Error::malformed_xml)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Ok(el),
                }
            }
            Event::Eof => return Err(S3Error::malformed_xml()),
            _ => {}
        }
        buf.clear();
    }
}

/// Escapes text for an element's content.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// An answer document under construction.
pub struct Doc(pub String);

impl Doc {
    /// A document whose root carries S3's namespace.
    pub fn new(root: &str) -> Self {
        Doc(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        ))
    }

    pub fn el(&mut self, name: &str, text: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        self.0.push_str(&esc(text));
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    pub fn open(&mut self, name: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }

    pub fn end(mut self, root: &str) -> String {
        self.close(root);
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_delete_document() {
        let doc = br#"<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>v</VersionId></Object><Quiet>true</Quiet></Delete>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "Delete");
        let keys: Vec<_> = root
            .all("Object")
            .filter_map(|o| o.text_of("Key"))
            .collect();
        assert_eq!(keys, ["a&b", "c"]);
        assert_eq!(root.text_of("Quiet"), Some("true"));
        assert!(parse(b"<Delete><Object>").is_err());
    }

    #[test]
    fn references_between_text_are_resolved() {
        let root = parse(b"<Tag><Key>x&#65;&#x42;&lt;y&gt;&quot;&apos;</Key></Tag>").unwrap();
        assert_eq!(root.text_of("Key"), Some("xAB<y>\"'"));
        assert!(parse(b"<Tag><Key>&nosuch;</Key></Tag>").is_err());
    }
}
