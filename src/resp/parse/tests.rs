//! Parser tests: pipelining, arbitrary read boundaries, inline quoting, every
//! error text, and property tests that garbage never panics and that any
//! argv survives a multibulk round trip however it is split into reads.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

type Commands = Vec<Vec<Vec<u8>>>;

/// Drains every complete command from `buf`, stopping at the first error.
fn drain(
    parser: &mut RequestParser,
    buf: &mut BytesMut,
    out: &mut Commands,
) -> Result<(), ParseError> {
    while let Some(argv) = parser.next(buf)? {
        assert!(!argv.is_empty(), "empty commands are skipped");
        out.push(argv.iter().map(|a| a.to_vec()).collect());
    }
    Ok(())
}

/// Feeds `input` in reads of the given sizes (cycled), as a socket would.
fn feed(input: &[u8], sizes: &[usize], limits: Limits) -> (Commands, Result<(), ParseError>) {
    let mut parser = RequestParser::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = input;
    let mut sizes = sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if let Err(e) = drain(&mut parser, &mut buf, &mut out) {
            return (out, Err(e));
        }
    }
    (out, Ok(()))
}

fn parse(input: &[u8]) -> (Commands, Result<(), ParseError>) {
    feed(input, &[input.len().max(1)], Limits::default())
}

fn argv(words: &[&[u8]]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.to_vec()).collect()
}

fn multibulk(argv: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for arg in argv {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn error_text(input: &[u8]) -> String {
    match parse(input).1 {
        Err(e) => e.to_string(),
        Ok(()) => panic!("{:?} parsed without error", String::from_utf8_lossy(input)),
    }
}

const PIPELINE: &[u8] = b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nb\0\r\n\
*0\r\n*-1\r\n\r\nECHO \"x y\"\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n  \r\nGET k\r\n";

fn pipeline_commands() -> Commands {
    vec![
        argv(&[b"PING"]),
        argv(&[b"SET", b"k", b"a\r\nb\0"]),
        argv(&[b"ECHO", b"x y"]),
        argv(&[b"ECHO", b""]),
        argv(&[b"GET", b"k"]),
    ]
}

#[test]
fn pipelined_commands_in_one_buffer() {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::from(PIPELINE);
    let mut out = Vec::new();
    drain(&mut parser, &mut buf, &mut out).unwrap();
    assert_eq!(out, pipeline_commands());
    assert!(buf.is_empty(), "everything consumed");
}

#[test]
fn every_split_point_gives_the_same_commands() {
    for k in 0..=PIPELINE.len() {
        let (out, result) = feed(PIPELINE, &[k.max(1), PIPELINE.len()], Limits::default());
        assert_eq!(result, Ok(()), "split at {k}");
        assert_eq!(out, pipeline_commands(), "split at {k}");
    }
    let (out, result) = feed(PIPELINE, &[1], Limits::default());
    assert_eq!((out, result), (pipeline_commands(), Ok(())), "byte by byte");
}

#[test]
fn incomplete_input_waits_and_keeps_progress() {
    let mut parser = RequestParser::default();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$10\r\nab"[..]);
    assert_eq!(parser.next(&mut buf), Ok(None));
    assert_eq!(parser.wants(), 10, "8 data bytes and CRLF still missing");
    assert_eq!(&buf[..], b"ab", "headers and finished args consumed");
    buf.extend_from_slice(b"cdefghij\r");
    assert_eq!(parser.next(&mut buf), Ok(None));
    assert_eq!(parser.wants(), 1);
    buf.extend_from_slice(b"\n");
    let got = parser.next(&mut buf).unwrap();
    assert_eq!(
        got,
        Some(vec![Bytes::from("GET"), Bytes::from("abcdefghij")])
    );
    assert_eq!(parser.wants(), 0);
}

#[test]
fn large_argument_in_small_reads() {
    let big = vec![b'x'; 1 << 20];
    let input = multibulk(&[b"SET".to_vec(), b"k".to_vec(), big.clone()]);
    let (out, result) = feed(&input, &[4096], Limits::default());
    assert_eq!(result, Ok(()));
    assert_eq!(out, vec![vec![b"SET".to_vec(), b"k".to_vec(), big]]);
}

#[test]
fn arguments_share_the_read_buffer() {
    let mut buf = BytesMut::from(&multibulk(&argv(&[b"SET", b"key", b"value"]))[..]);
    let range = buf.as_ptr_range();
    let got = RequestParser::default().next(&mut buf).unwrap().unwrap();
    for arg in &got {
        assert!(range.contains(&arg.as_ptr()), "{arg:?} was copied");
    }
}

#[test]
fn inline_splitting_follows_sdssplitargs() {
    let cases: &[(&[u8], &[&[u8]])] = &[
        (b"PING\n", &[b"PING"]),
        (b"  SET   k \t v  \r\n", &[b"SET", b"k", b"v"]),
        (b"ECHO \"a\\x41\\n\\tb\\\"\"\r\n", &[b"ECHO", b"aA\n\tb\""]),
        (b"ECHO \"\\r\\b\\a\\\\\\q\"\n", &[b"ECHO", b"\r\x08\x07\\q"]),
        (b"ECHO \"\\xZZ\\x4\"\n", &[b"ECHO", b"xZZx4"]),
        (b"ECHO 'it\\'s' 'a\\nb'\n", &[b"ECHO", b"it's", b"a\\nb"]),
        (b"ECHO foo\"bar baz\"\n", &[b"ECHO", b"foobar baz"]),
        (b"ECHO \"\" ''\n", &[b"ECHO", b"", b""]),
        (b"ECHO \"a\"\tb\n", &[b"ECHO", b"a", b"b"]),
        (b"ECHO a\x0bb \x0cc\n", &[b"ECHO", b"a\x0bb", b"c"]),
        (b"ECHO a\rb\r\n", &[b"ECHO", b"a", b"b"]),
        (b"ECHO a\0b c\n", &[b"ECHO", b"a"]),
        (b"ECHO \xff\n", &[b"ECHO", b"\xff"]),
    ];
    for (line, words) in cases {
        let (out, result) = parse(line);
        let shown = String::from_utf8_lossy(line);
        assert_eq!(result, Ok(()), "{shown:?}");
        assert_eq!(out, vec![argv(words)], "{shown:?}");
    }
}

#[test]
fn empty_requests_are_skipped() {
    let (out, result) = parse(b"\n\r\n   \r\n*0\r\n*-1\r\n*-7\r\nPING\r\n");
    assert_eq!((out, result), (vec![argv(&[b"PING"])], Ok(())));
}

#[test]
fn error_texts_match_redis() {
    let too_long = |prefix: &[u8]| [prefix, &[b'1'; MAX_LINE]].concat();
    let cases: &[(&[u8], &str)] = &[
        (b"*x\r\n", "invalid multibulk length"),
        (b"*\r\n", "invalid multibulk length"),
        (b"*+1\r\n", "invalid multibulk length"),
        (b"*01\r\n", "invalid multibulk length"),
        (b"*-0\r\n", "invalid multibulk length"),
        (b"*1048577\r\n", "invalid multibulk length"),
        (b"*99999999999999999999\r\n", "invalid multibulk length"),
        (b"*1\rX", "invalid multibulk length"),
        (b"*1\r\n$x\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$04\r\n", "invalid bulk length"),
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1\r\n$1\rX", "invalid bulk length"),
        (b"*1\r\n:4\r\n", "expected '$', got ':'"),
        (b"*1\r\n*1\r\n$4\r\nPING\r\n", "expected '$', got '*'"),
        (b"*1\r\nX", "expected '$', got 'X'"),
        (b"*1\r\n$4\r\nPINGXX", "bulk string not terminated by CRLF"),
        (b"SET \"foo\r\n", "unbalanced quotes in request"),
        (b"SET 'foo\r\n", "unbalanced quotes in request"),
        (b"ECHO \"foo\"bar\r\n", "unbalanced quotes in request"),
        (b"ECHO 'foo'bar\r\n", "unbalanced quotes in request"),
        (b"ECHO \"foo\\\"\n", "unbalanced quotes in request"),
        (&[b'A'; MAX_LINE + 1], "too big inline request"),
        (&too_long(b"*"), "too big mbulk count string"),
        (&too_long(b"*1\r\n$"), "too big bulk count string"),
    ];
    for (input, text) in cases {
        let shown = String::from_utf8_lossy(&input[..input.len().min(40)]);
        assert_eq!(
            error_text(input),
            format!("Protocol error: {text}"),
            "{shown:?}"
        );
    }
}

#[test]
fn line_limits_do_not_depend_on_read_boundaries() {
    let mut longest = vec![b'A'; MAX_LINE];
    longest.push(b'\n');
    let mut too_long = vec![b'A'; MAX_LINE + 1];
    too_long.push(b'\n');
    for sizes in [&[usize::MAX][..], &[1000]] {
        let (out, result) = feed(&longest, sizes, Limits::default());
        assert_eq!((out.len(), result), (1, Ok(())));
        let (_, result) = feed(&too_long, sizes, Limits::default());
        assert_eq!(result, Err(ParseError::TooLarge(Violation::InlineRequest)));
    }
    let (out, result) = parse(&longest[..MAX_LINE]);
    assert_eq!(
        (out.len(), result),
        (0, Ok(())),
        "a full-length line may still end"
    );
}

#[test]
fn configured_limits() {
    let limits = Limits {
        max_bulk_len: 8,
        max_args: 3,
        max_request_bytes: 10,
    };
    let check = |input: &[u8], expected: Result<(), ParseError>| {
        assert_eq!(feed(input, &[input.len()], limits).1, expected);
    };
    check(&multibulk(&argv(&[b"12345678", b"12"])), Ok(()));
    let too_large = |v| Err(ParseError::TooLarge(v));
    check(
        &multibulk(&argv(&[b"123456789"])),
        too_large(Violation::BulkLength),
    );
    check(
        &multibulk(&argv(&[b"a", b"b", b"c", b"d"])),
        too_large(Violation::MultibulkLength),
    );
    // Refused on the header, before the argument itself arrives.
    check(
        b"*2\r\n$8\r\n12345678\r\n$3\r\n",
        too_large(Violation::Request),
    );
    check(b"ECHO 1234567890\n", too_large(Violation::Request));
    assert_eq!(
        ParseError::TooLarge(Violation::Request).to_string(),
        "Protocol error: request too large"
    );
}

#[test]
fn deeply_nested_arrays_fail_without_recursion() {
    let input = b"*1\r\n".repeat(10_000);
    let (out, result) = parse(&input);
    assert!(out.is_empty());
    assert_eq!(
        result,
        Err(ParseError::Malformed(Violation::ExpectedBulk(b'*')))
    );
}

#[test]
fn integers_parse_like_string2ll() {
    assert_eq!(parse_int(b"0"), Some(0));
    assert_eq!(parse_int(b"-1"), Some(-1));
    assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
    assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
    for bad in [
        &b""[..],
        b"-",
        b"-0",
        b"00",
        b"+1",
        b" 1",
        b"1 ",
        b"9223372036854775808",
    ] {
        assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

/// Bytes that look enough like requests to reach deep parser states.
fn protocol_soup() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\x4".to_vec()),
        Just(b" ".to_vec()),
        (0u32..20).prop_map(|n| n.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
}

/// Quotes every byte as `\xHH`, so any argument survives the inline form.
fn inline_line(argv: &[Vec<u8>]) -> Vec<u8> {
    let mut line = Vec::new();
    for arg in argv {
        line.push(b'"');
        for b in arg {
            line.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
        line.extend_from_slice(b"\" ");
    }
    line.extend_from_slice(b"\r\n");
    line
}

fn arb_commands() -> impl Strategy<Value = Commands> {
    let arg = prop::collection::vec(any::<u8>(), 0..40);
    prop::collection::vec(prop::collection::vec(arg, 1..6), 1..5)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..600),
        sizes in prop::collection::vec(1usize..64, 1..8),
    ) {
        // Commands and errors alike do not depend on read boundaries.
        prop_assert_eq!(parse(&input), feed(&input, &sizes, Limits::default()));
    }

    #[test]
    fn protocol_soup_never_panics(
        input in protocol_soup(),
        sizes in prop::collection::vec(1usize..16, 1..8),
    ) {
        // Commands and errors alike do not depend on read boundaries.
        prop_assert_eq!(parse(&input), feed(&input, &sizes, Limits::default()));
    }

    #[test]
    fn multibulk_round_trips_at_any_chunking(
        commands in arb_commands(),
        sizes in prop::collection::vec(1usize..50, 1..8),
    ) {
        let input: Vec<u8> = commands.iter().flat_map(|c| multibulk(c)).collect();
        let (out, result) = feed(&input, &sizes, Limits::default());
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(out, commands);
    }

    #[test]
    fn quoted_inline_round_trips(
        commands in arb_commands(),
        sizes in prop::collection::vec(1usize..50, 1..8),
    ) {
        let input: Vec<u8> = commands.iter().flat_map(|c| inline_line(c)).collect();
        let (out, result) = feed(&input, &sizes, Limits::default());
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(out, commands);
    }
}
