import Foundation
import Logging
import SSHTransport
import Testing

@testable import Fleet

/// Live sources are untrusted input: host names and facts are checked, and the host-list cache is
/// a private, structured file that a symlink, a stale copy or another source's answer cannot replace.
@Suite("Live source trust boundaries")
struct LiveSourceTrustTests {
    static func temporaryDirectory() -> String {
        NSTemporaryDirectory() + "govuk-fab-trust-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    @Test(arguments: [
        ("10.0.0.5 -\nprod-db-1 10.9.9.9", false), ("-oProxyCommand=x", false), ("a b", false), ("", false),
        ("cache-1.integration.internal", true), ("10.1.0.11", true), ("fd00::1", true), ("host_1", true),
        ("caché-1", false), ("a;reboot", false), (String(repeating: "a", count: 254), false),
    ])
    func addressRules(_ text: String, _ valid: Bool) {
        #expect(HostNameRules.isAddress(text) == valid)
    }

    @Test func entriesAreCheckedWhole() {
        #expect(LiveHostLister.isValid(.init(name: "cache-1", address: "10.1.0.11", nodeClass: "cache")))
        #expect(!LiveHostLister.isValid(.init(name: "cache-1", address: "10.1.0.11", nodeClass: "cache\nprod")))
        #expect(!LiveHostLister.isValid(.init(name: "cache-1.x", address: "10.1.0.11", nodeClass: nil)))
        #expect(!LiveHostLister.isValid(.init(name: "cache-1", address: "10.0.0.5 -", nodeClass: nil)))
    }

    @Test("the cache is JSON, 0600 in a 0700 directory, and round-trips")
    func cacheFilesArePrivate() throws {
        let directory = Self.temporaryDirectory() + "/hosts"
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let cache = HostListCache(directory: directory)
        let answer = HostListAnswer(
            key: "production (PuppetDB https://p) puppet_class:gor", fetched: Date(),
            hosts: [.init(name: "cache-1", address: "10.1.0.11", nodeClass: "cache")])
        try cache.write(answer)
        var info = stat()
        #expect(lstat(directory, &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(lstat(cache.path(for: answer.key), &info) == 0 && info.st_mode & 0o777 == 0o600)
        let read = try #require(cache.read(key: answer.key, ttl: .seconds(300), now: Date()))
        #expect(read.hosts == answer.hosts)
        let text = try String(contentsOfFile: cache.path(for: answer.key), encoding: .utf8)
        #expect(text.hasPrefix("{") && text.contains("\"address\":\"10.1.0.11\""))
    }

    @Test("another source's answer, a stale answer and a too-open file are not used")
    func cacheIsKeyedFreshAndPrivate() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = HostListCache(directory: directory)
        let key = "staging (gateway command govuk_node_list) all"
        try cache.write(HostListAnswer(key: key, fetched: Date().addingTimeInterval(-600), hosts: []))
        #expect(cache.read(key: key, ttl: .seconds(300), now: Date()) == nil)
        #expect(cache.read(key: key, ttl: .seconds(3600), now: Date()) != nil)
        // Touching the file does not make an old answer fresh: freshness is read from inside it.
        #expect(utime(cache.path(for: key), nil) == 0)
        #expect(cache.read(key: key, ttl: .seconds(300), now: Date()) == nil)
        // A file whose key says it belongs to another source is ignored even at this path.
        let other = "production (gateway command govuk_node_list) all"
        try cache.write(HostListAnswer(key: other, fetched: Date(), hosts: []))
        #expect(rename(cache.path(for: other), cache.path(for: key)) == 0)
        #expect(cache.read(key: key, ttl: .seconds(300), now: Date()) == nil)
        // A group-readable file is not ours to trust.
        try cache.write(HostListAnswer(key: key, fetched: Date(), hosts: []))
        #expect(chmod(cache.path(for: key), 0o644) == 0)
        #expect(cache.read(key: key, ttl: .seconds(300), now: Date()) == nil)
    }

    @Test("a symlink planted at the cache path is neither read nor written through")
    func cacheDoesNotFollowSymlinks() throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = HostListCache(directory: directory)
        let key = "production (file) all"
        try HostListCache.makePrivateDirectory(directory)
        let planted = directory + "/planted.json"
        let forged = HostListAnswer(key: key, fetched: Date(), hosts: [.init(name: "prod-db-1", address: "10.9.9.9")])
        try JSONEncoder().encode(forged).write(to: URL(fileURLWithPath: planted))
        chmod(planted, 0o600)
        #expect(symlink(planted, cache.path(for: key)) == 0)
        #expect(cache.read(key: key, ttl: .seconds(300), now: Date()) == nil)
        // Writing replaces the link itself; the planted file is untouched.
        try cache.write(HostListAnswer(key: key, fetched: Date(), hosts: []))
        var info = stat()
        #expect(lstat(cache.path(for: key), &info) == 0 && info.st_mode & S_IFMT == S_IFREG)
        #expect(
            try JSONDecoder().decode(HostListAnswer.self, from: Data(contentsOf: URL(fileURLWithPath: planted))).hosts
                .count == 1)
    }

    @Test("a cached answer with a forged host is refused and the source asked again")
    func poisonedCacheIsNotUsed() async throws {
        let directory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var inventory = Inventory(name: "poison", hosts: [])
        inventory.source = .gatewayCommand("govuk_node_list")
        let lister = LiveHostLister(
            inventory: inventory, options: SSHClientOptions(), cacheDirectory: directory,
            refresh: false, logger: Logger(label: "test"))
        let query = HostListQuery(.all)
        let cache = HostListCache(directory: directory)
        try cache.write(
            HostListAnswer(
                key: "poison (gateway command govuk_node_list) all", fetched: Date(),
                hosts: [.init(name: "prod-db-1", address: "10.9.9.9 -oProxyCommand=x")]))
        let asked = AskCounter()
        let entries = try await lister.answer(query) { _ in
            await asked.increment()
            return [.init(name: "cache-1", address: "cache-1.example")]
        }
        #expect(await asked.count == 1)
        #expect(entries.map(\.name) == ["cache-1"])
    }
}

private actor AskCounter {
    var count = 0
    func increment() { count += 1 }
}
