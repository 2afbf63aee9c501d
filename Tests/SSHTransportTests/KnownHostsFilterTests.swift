import Testing

@testable import SSHTransport

/// Only known_hosts lines that could name the host are handed to libssh2: the index offers plain
/// names by dictionary and every hashed, wildcard or negated line.
@Suite("known_hosts line filter")
struct KnownHostsFilterTests {
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="

    func mayName(_ patterns: String, _ host: String, port: Int = 22) -> Bool {
        let index = KnownHostsIndex(bytes: Array("\(patterns) \(Self.key)\n".utf8), path: "test")
        let names = [KnownHostsEntry.lookupName(host: host, port: port), host.lowercased()]
        return index.candidates(for: names) == [0]
    }

    @Test func plainBracketedNegatedAndCaseInsensitiveNamesPass() {
        #expect(mayName("cache-1,10.0.0.1", "10.0.0.1"))
        #expect(mayName("[127.0.1.5]:2222", "127.0.1.5", port: 2222))
        #expect(mayName("!cache-1,*.example", "cache-1"))
        #expect(mayName("Cache-1.Example", "cache-1.example"))
        #expect(mayName("cache-1", "Cache-1"))
    }

    @Test func hashedAndWildcardLinesAlwaysPass() {
        #expect(mayName("|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg=", "cache-1"))
        #expect(mayName("*.publishing.service.gov.uk", "cache-1"))
        #expect(mayName("cache-?", "cache-1"))
    }

    @Test func linesForOtherHostsAreSkipped() {
        #expect(!mayName("[127.0.1.6]:2222", "127.0.1.5", port: 2222))
        #expect(!mayName("backend-1,10.0.0.2", "cache-1"))
        #expect(!mayName("a", "cache-1"))
        #expect(!mayName("cache-10", "cache-1"))
    }

    @Test func linesComeInFileOrderOnceEach() {
        let text = """
            *.example \(Self.key)
            other \(Self.key)
            a,A,[a]:2222 \(Self.key)
            @revoked a \(Self.key)
            @cert-authority a \(Self.key)
            not-a-known-hosts-line
            |1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg= \(Self.key)

            """
        let index = KnownHostsIndex(bytes: Array(text.utf8), path: "kh")
        #expect(index.lines.map(\.lineNumber) == [1, 2, 3, 4, 7])
        #expect(index.candidates(for: ["[a]:2222", "a"]) == [0, 2, 3, 4])
        #expect(index.lines[3].revokedBlob != nil)
        #expect(
            index.warnings == [
                "kh:5: @cert-authority (host certificates) is not supported by libssh2 1.10; line skipped",
                "kh:6: skipping malformed known_hosts line (expected: host-patterns key-type base64-key)",
            ])
    }
}
