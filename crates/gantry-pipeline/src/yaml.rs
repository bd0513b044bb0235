use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
#[derive(Debug)]
pub enum Node { Null, Bool(bool), Int(i64), Float(f64), Str(String), Seq(Vec<Spanned<Node>>), Map(Vec<(Spanned<String>, Spanned<Node>)>) }
struct V;
impl<'de> Visitor<'de> for V {
    type Value = Node;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { f.write_str("any") }
    fn visit_unit<E>(self) -> Result<Node, E> { Ok(Node::Null) }
    fn visit_none<E>(self) -> Result<Node, E> { Ok(Node::Null) }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> { Ok(Node::Bool(v)) }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> { Ok(Node::Int(v)) }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> { Ok(Node::Int(v as i64)) }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> { Ok(Node::Float(v)) }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> { Ok(Node::Str(v.into())) }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> { let mut v = vec![]; while let Some(x) = s.next_element()? { v.push(x) } Ok(Node::Seq(v)) }
    fn visit_map<A: MapAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> { let mut v = vec![]; while let Some(x) = s.next_entry()? { v.push(x) } Ok(Node::Map(v)) }
}
impl<'de> Deserialize<'de> for Node { fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> { d.deserialize_any(V) } }
#[test]
fn t() {
    let y = "a: &x\n  b: 1\n  c: [x, \"y\"]\nd:\n  <<: *x\n  e: null\nf: 1.5\ng: yes\nh: ~\n";
    let n: Spanned<Node> = serde_saphyr::from_str(y).unwrap();
    println!("{n:#?}");
    let e = serde_saphyr::from_str::<Spanned<Node>>("a: [1, 2\nb: c\n").unwrap_err();
    println!("{e}\n{:?}", e.location());
    let e = serde_saphyr::from_str::<Spanned<Node>>("a: 1\na: 2\n");
    println!("{e:?}");
}
