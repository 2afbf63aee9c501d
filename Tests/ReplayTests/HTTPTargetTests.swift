import Testing

@testable import Replay

/// `--output-http` addresses: URLComponents plus GoReplay's quirks.
@Suite("HTTPTarget parsing")
struct HTTPTargetTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var text: String
        var tls: Bool
        var host: String
        var port: Int
        var hostHeader: String
        var pathAndQuery: String?
        var authorization: String? = nil
        var testDescription: String { text }
    }

    @Test(
        "accepted addresses",
        arguments: [
            // Bare host:port means http (GoReplay prefixes http://).
            Case(text: "127.0.0.1:8080", tls: false, host: "127.0.0.1", port: 8080, hostHeader: "127.0.0.1:8080"),
            Case(text: "example.org", tls: false, host: "example.org", port: 80, hostHeader: "example.org"),
            // localhost connects to 127.0.0.1 but the Host header keeps the name.
            Case(text: "localhost:8000", tls: false, host: "127.0.0.1", port: 8000, hostHeader: "localhost:8000"),
            Case(text: "http://LOCALHOST", tls: false, host: "127.0.0.1", port: 80, hostHeader: "LOCALHOST"),
            Case(text: "http://:9000", tls: false, host: "127.0.0.1", port: 9000, hostHeader: "127.0.0.1:9000"),
            Case(text: "https://www.gov.uk", tls: true, host: "www.gov.uk", port: 443, hostHeader: "www.gov.uk"),
            Case(
                text: "HTTPS://www.gov.uk:8443/", tls: true, host: "www.gov.uk", port: 8443,
                hostHeader: "www.gov.uk:8443"),
            Case(
                text: "http://[::1]:8080/x?y=1", tls: false, host: "::1", port: 8080, hostHeader: "[::1]:8080",
                pathAndQuery: "/x?y=1"),
            Case(
                text: "http://host?q=1", tls: false, host: "host", port: 80, hostHeader: "host", pathAndQuery: "/?q=1"),
            Case(
                text: "http://user:p%40ss@host:81/api", tls: false, host: "host", port: 81, hostHeader: "host:81",
                pathAndQuery: "/api", authorization: "Basic dXNlcjpwQHNz"),
        ])
    func accepted(_ expected: Case) throws {
        let target = try HTTPTarget(parsing: expected.text)
        #expect(target.isTLS == expected.tls)
        #expect(target.host == expected.host)
        #expect(target.port == expected.port)
        #expect(target.hostHeader == expected.hostHeader)
        #expect(target.pathAndQuery == expected.pathAndQuery)
        #expect(target.authorization == expected.authorization)
    }

    @Test(
        "refused addresses name what was expected",
        arguments: [
            ("ftp://x", "an http:// or https:// URL"),
            ("http://host:99999", "a port between 1 and 65535"),
            ("http://host:0", "a port between 1 and 65535"),
            ("host:port", "a port between 1 and 65535"),
            ("http://[::1:80", "[IPv6]:port"),
            ("http://a b", "an http:// or https:// URL"),
        ])
    func refused(text: String, expected: String) {
        #expect(throws: ConfigurationError.malformedRule(text, expected: expected)) { try HTTPTarget(parsing: text) }
    }
}
