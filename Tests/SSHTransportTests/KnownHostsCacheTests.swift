import Foundation
import Testing

@testable import SSHTransport

#if canImport(Glibc)
    import Glibc
#endif

/// known_hosts files are parsed once per process and read again whenever they change.
@Suite("known_hosts cache")
struct KnownHostsCacheTests {
    static let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="

    /// Rewrites `path` in place (same inode), as `>>` or an editor saving in place would.
    static func writeInPlace(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw TestSetupError("cannot open \(path)") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw TestSetupError("short write to \(path)") }
    }

    /// Sets the modification time an hour back, so the cache trusts the file's identity.
    static func age(_ path: String) {
        var times = [timespec(tv_sec: time(nil) - 3600, tv_nsec: 0), timespec(tv_sec: time(nil) - 3600, tv_nsec: 0)]
        _ = utimensat(AT_FDCWD, path, &times, 0)
    }

    static func names(_ path: String, host: String) -> [String] {
        guard case .parsed(let index) = KnownHostsCache.index(path: path) else { return [] }
        return index.candidates(for: [host]).map { String(index.lines[$0].entry.patterns) }
    }

    @Test func anUnchangedFileIsParsedOnce() throws {
        let directory = try makeTemporaryDirectory("kh-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/known_hosts"
        try Self.writeInPlace(path, "a \(Self.key)\nb \(Self.key)\n")
        Self.age(path)
        for _ in 0..<5 { #expect(Self.names(path, host: "a") == ["a"]) }
        #expect(KnownHostsCache.parses(of: path) == 1)
    }

    @Test func anAppendedLineIsSeenAndNoLineIsLost() throws {
        let directory = try makeTemporaryDirectory("kh-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/known_hosts"
        try Self.writeInPlace(path, "a \(Self.key)\n")
        Self.age(path)
        #expect(Self.names(path, host: "c") == [])
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("c,*.example \(Self.key)\n".utf8))
        try handle.close()
        #expect(Self.names(path, host: "c") == ["c,*.example"])
        // A wildcard line is offered for every host; the entry's own match then decides.
        #expect(Self.names(path, host: "a") == ["a", "c,*.example"])
        #expect(Self.names(path, host: "x.example") == ["c,*.example"])
        #expect(KnownHostsCache.parses(of: path) == 2)
    }

    @Test func aSameSizeRewriteWithinOneTimestampTickIsSeen() throws {
        let directory = try makeTemporaryDirectory("kh-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/known_hosts"
        // Fresh writes: file times are coarse, so identity alone cannot tell these apart.
        try Self.writeInPlace(path, "a \(Self.key)\n")
        #expect(Self.names(path, host: "a") == ["a"])
        #expect(Self.names(path, host: "a") == ["a"])
        #expect(KnownHostsCache.parses(of: path) == 1, "re-read while recent, but not re-parsed when unchanged")
        try Self.writeInPlace(path, "b \(Self.key)\n")
        #expect(Self.names(path, host: "a") == [])
        #expect(Self.names(path, host: "b") == ["b"])
    }

    @Test func aReplacedFileIsSeen() throws {
        let directory = try makeTemporaryDirectory("kh-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/known_hosts"
        try Self.writeInPlace(path, "a \(Self.key)\n")
        Self.age(path)
        #expect(Self.names(path, host: "a") == ["a"])
        try Self.writeInPlace(path + ".new", "b \(Self.key)\n")
        Self.age(path + ".new")
        #expect(rename(path + ".new", path) == 0)
        #expect(Self.names(path, host: "b") == ["b"])
    }

    @Test func missingAndUnreadableFiles() throws {
        let directory = try makeTemporaryDirectory("kh-cache")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard case .missing = KnownHostsCache.index(path: directory + "/absent") else {
            Issue.record("an absent file is missing")
            return
        }
        guard case .unreadable = KnownHostsCache.index(path: directory) else {
            Issue.record("a directory is unreadable")
            return
        }
    }
}

/// The cache against a real sshd: one process connects while the file changes under it.
@Suite("known_hosts cache against sshd", .enabled(if: isRoot, "needs root to run sshd"))
struct KnownHostsCacheSSHDTests {
    static func accepts(_ fixture: StandaloneFixture, _ path: String) async throws -> Bool {
        do {
            let session = try await fixture.connect(fixture.options(knownHosts: path))
            await session.close()
            return true
        } catch let error as SSHError where error.operation == .hostKey {
            return false
        }
    }

    @Test("a key added, changed, revoked and removed between connects is seen each time")
    func fileChangedBetweenConnects() async throws {
        let fixture = try await StandaloneFixture.make(hostKeyTypes: ["ed25519"])
        defer { fixture.cleanUp() }
        let port = fixture.sshd.port
        let right = try fixture.sshd.knownHostsLine("ed25519")
        let otherKey = try readText(try makeUserKey(in: fixture.clientDirectory, name: "other") + ".pub")
            .split(separator: " ").prefix(2).joined(separator: " ")
        let wrong = "[127.0.0.1]:\(port) \(otherKey)"
        #expect(right.count == wrong.count)
        let path = fixture.clientDirectory + "/known_hosts"

        try KnownHostsCacheTests.writeInPlace(path, "unrelated \(KnownHostsCacheTests.key)\n")
        #expect(try await !Self.accepts(fixture, path))
        // As `ssh-keyscan >> known_hosts` during a run.
        try KnownHostsCacheTests.writeInPlace(path, "unrelated \(KnownHostsCacheTests.key)\n\(right)\n")
        #expect(try await Self.accepts(fixture, path))
        // The same size, in place: the wrong key.
        try KnownHostsCacheTests.writeInPlace(path, "unrelated \(KnownHostsCacheTests.key)\n\(wrong)\n")
        #expect(try await !Self.accepts(fixture, path))
        try KnownHostsCacheTests.writeInPlace(path, "unrelated \(KnownHostsCacheTests.key)\n\(right)\n")
        #expect(try await Self.accepts(fixture, path))
        try KnownHostsCacheTests.writeInPlace(path, "\(right)\n@revoked \(right)\n")
        let error = try await fixture.connectFailure(fixture.options(knownHosts: path))
        guard case .hostKeyRevoked = error.kind else {
            Issue.record("expected hostKeyRevoked, got \(error)")
            return
        }
    }

    @Test("hashed and wildcard entries match on every connect, also from the cache")
    func hashedAndWildcardFromCache() async throws {
        let fixture = try await StandaloneFixture.make(hostKeyTypes: ["ed25519"])
        defer { fixture.cleanUp() }
        let port = fixture.sshd.port
        let key = try fixture.sshd.publicKey("ed25519").split(separator: " ").prefix(2).joined(separator: " ")

        let hashed = try fixture.knownHosts([try fixture.sshd.knownHostsLine("ed25519")], name: "hashed")
        _ = try shell("ssh-keygen -q -H -f \(hashed) 2>&1; rm -f \(hashed).old")
        #expect(try readText(hashed).hasPrefix("|1|"))
        KnownHostsCacheTests.age(hashed)
        for _ in 0..<3 { #expect(try await Self.accepts(fixture, hashed)) }
        #expect(KnownHostsCache.parses(of: hashed) == 1)

        let wildcard = try fixture.knownHosts(
            ["[127.0.0.?]:\(port),![127.0.0.2]:\(port) \(key)", "[127.0.0.1]:1 \(key)"], name: "wildcard")
        KnownHostsCacheTests.age(wildcard)
        for _ in 0..<3 { #expect(try await Self.accepts(fixture, wildcard)) }
        #expect(KnownHostsCache.parses(of: wildcard) == 1)

        let negated = try fixture.knownHosts(["[127.0.0.*]:\(port),![127.0.0.1]:\(port) \(key)"], name: "negated")
        KnownHostsCacheTests.age(negated)
        for _ in 0..<2 { #expect(try await !Self.accepts(fixture, negated)) }
    }
}
