import Testing

@testable import SSHTransport

/// Only known_hosts lines that could name the host are handed to libssh2.
@Suite("known_hosts line filter")
struct KnownHostsFilterTests {
    func mayName(_ patterns: String, _ host: String) -> Bool {
        KnownHosts.mayName(patterns: ArraySlice(patterns.utf8), host: Array(host.lowercased().utf8))
    }

    @Test func plainBracketedNegatedAndCaseInsensitiveNamesPass() {
        #expect(mayName("cache-1,10.0.0.1", "10.0.0.1"))
        #expect(mayName("[127.0.1.5]:2222", "127.0.1.5"))
        #expect(mayName("!cache-1,*.example", "cache-1"))
        #expect(mayName("Cache-1.Example", "cache-1.example"))
    }

    @Test func hashedAndWildcardLinesAlwaysPass() {
        #expect(mayName("|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg=", "cache-1"))
        #expect(mayName("*.publishing.service.gov.uk", "cache-1"))
        #expect(mayName("cache-?", "cache-1"))
    }

    @Test func linesForOtherHostsAreSkipped() {
        #expect(!mayName("[127.0.1.6]:2222", "127.0.1.5"))
        #expect(!mayName("backend-1,10.0.0.2", "cache-1"))
        #expect(!mayName("a", "cache-1"))
    }
}
