import Testing

@testable import SSHConfig

@Suite("Errors carry file and line")
struct SSHConfigErrorTests {
    struct ErrorCase: Sendable, CustomTestStringConvertible {
        var config: String
        var line: Int
        /// Text the message must contain.
        var mentions: String
        var testDescription: String { config.replacingOccurrences(of: "\n", with: "⏎") }
    }

    static let cases: [ErrorCase] = [
        ErrorCase(config: "Host a\n  Port abc\n", line: 2, mentions: "Port"),
        ErrorCase(config: "Host a\n  Port 0\n", line: 2, mentions: "1 to 65535"),
        ErrorCase(config: "Host a\n  Port 70000\n", line: 2, mentions: "70000"),
        // Validated even in blocks that never match, as OpenSSH does.
        ErrorCase(config: "Host a\n Port 1\nHost never\n\n Port -1\n", line: 5, mentions: "-1"),
        ErrorCase(config: "Port 7 8\n", line: 1, mentions: "extra"),
        ErrorCase(config: "Port\n", line: 1, mentions: "needs a value"),
        ErrorCase(config: "User \"alice\n", line: 1, mentions: "quotes"),
        ErrorCase(config: "Host\n", line: 1, mentions: "pattern"),
        ErrorCase(config: "Match\n", line: 1, mentions: "criterion"),
        ErrorCase(config: "Match all host x\n", line: 1, mentions: "Match all"),
        ErrorCase(config: "Match host\n", line: 1, mentions: "argument"),
        ErrorCase(config: "Match bogus x\n", line: 1, mentions: "bogus"),
        ErrorCase(config: "IdentitiesOnly maybe\n", line: 1, mentions: "yes or no"),
        ErrorCase(config: "StrictHostKeyChecking sometimes\n", line: 1, mentions: "accept-new"),
        ErrorCase(config: "ConnectTimeout 5x\n", line: 1, mentions: "ConnectTimeout"),
        ErrorCase(config: "connecttimeout 0\n", line: 1, mentions: "connecttimeout"),
        ErrorCase(config: "ServerAliveCountMax many\n", line: 1, mentions: "whole number"),
        ErrorCase(config: "IdentityFile ~/.ssh/%C\n", line: 1, mentions: "%C"),
        ErrorCase(config: "IdentityFile /k/%\n", line: 1, mentions: "end of value"),
        ErrorCase(config: "HostName %r.example\n", line: 1, mentions: "%r"),
        ErrorCase(config: "\n\n\nProxyJump user@\n", line: 4, mentions: "empty host"),
        ErrorCase(config: "ProxyJump [::1\n", line: 1, mentions: "]"),
        ErrorCase(config: "=value\n", line: 1, mentions: "keyword"),
        ErrorCase(config: "Include\n", line: 1, mentions: "Include"),
    ]

    @Test(arguments: cases)
    func located(_ row: ErrorCase) throws {
        let error = try #require(throws: SSHConfigError.self) { try parse(row.config) }
        #expect(error.description.hasPrefix("test.conf:\(row.line): "), "\(error)")
        #expect(error.description.contains(row.mentions), "\(error)")
    }

    @Test func missingFile() {
        let error = #expect(throws: SSHConfigError.self) {
            try SSHConfigFile.load(path: "/nonexistent/ssh_config", environment: testEnvironment)
        }
        #expect(error == .unreadableFile(path: "/nonexistent/ssh_config", reason: "no such file"))
    }

    @Test func missingUserConfigIsEmpty() throws {
        let scratch = try ScratchDirectory()
        let config = try SSHConfigFile.loadUserConfig(environment: scratch.environment)
        #expect(config.resolve(host: "x") == ResolvedSSHConfig(host: "x", hostName: "x"))
    }
}

@Suite("Include")
struct SSHConfigIncludeTests {
    @Test func relativeGlobFromDotSSHInSortedOrder() throws {
        let scratch = try ScratchDirectory()
        try scratch.write(".ssh/config.d/20-web", "Host web*\n User web20\n IdentityFile /k/20\n")
        try scratch.write(".ssh/config.d/10-web", "Host web*\n User web10\n IdentityFile /k/10\n")
        try scratch.write(".ssh/config", "Include config.d/*\nHost *\n User fallback\n IdentityFile /k/main\n")
        let config = try SSHConfigFile.load(path: scratch.path + "/.ssh/config", environment: scratch.environment)
        let r = config.resolve(host: "web1")
        #expect(r.user == "web10")
        #expect(r.identityFiles == ["/k/10", "/k/20", "/k/main"])
        #expect(config.includedFiles.map { $0.hasSuffix("10-web") } == [true, false])
        #expect(config.resolve(host: "db1").user == "fallback")
    }

    @Test func tildeAndAbsolutePaths() throws {
        let scratch = try ScratchDirectory()
        try scratch.write("elsewhere/a.conf", "Port 2001\n")
        try scratch.write(".ssh/b.conf", "User bee\n")
        let config = try SSHConfigFile.parse(
            "Include \(scratch.path)/elsewhere/a.conf ~/.ssh/b.conf nomatch-*\n", path: "main",
            environment: scratch.environment)
        #expect(config.resolve(host: "x").port == 2001)
        #expect(config.resolve(host: "x").user == "bee")
    }

    /// The same trials as OpenSSH's own regression test for Include inside Host/Match blocks.
    @Test(arguments: [
        ("a", "aa"), ("b", "bb"), ("c", "ccc"), ("d", "dd"), ("e", "ee"), ("f", "fff"),
        ("m", "xxxx"), ("n", "xxxx"), ("x", "x"),
    ])
    func includeInsideBlocks(_ host: String, _ expected: String) throws {
        let scratch = try ScratchDirectory()
        let dir = scratch.path
        try scratch.write("i.0", "Match host xxxxxx\n")
        try scratch.write(
            "i.1",
            "Match host a\n Hostname aaa\nMatch host b\n Hostname bbb\nMatch host c\n Hostname ccc\n"
                + "Host d\n Hostname ddd\nHost e\n Hostname eee\nHost f\n Hostname fff\n")
        try scratch.write(
            "i.2",
            "Match host a\n Hostname aaaa\nMatch host b\n Hostname bbbb\nMatch host c\n Hostname cccc\n"
                + "Host d\n Hostname dddd\nHost e\n Hostname eeee\nHost f\n Hostname ffff\nMatch all\n Hostname xxxx\n")
        let main = """
            Match host a
              Hostname aa
            Match host b
              Hostname bb
              Include \(dir)/i.*
            Match host c
              Include \(dir)/i.*
              Hostname cc
            Match host m
              Include \(dir)/i.*
            Host d
              Hostname dd
            Host e
              Hostname ee
              Include \(dir)/i.*
            Host f
              Include \(dir)/i.*
              Hostname ff
            Host n
              Include \(dir)/i.*
            """
        let config = try SSHConfigFile.parse(main, path: "main", environment: scratch.environment)
        #expect(config.resolve(host: host).hostName == expected)
    }

    @Test func selfIncludeHitsDepthLimit() throws {
        let scratch = try ScratchDirectory()
        try scratch.write(".ssh/loop", "Include loop\n")
        let error = #expect(throws: SSHConfigError.self) {
            try SSHConfigFile.load(path: scratch.path + "/.ssh/loop", environment: scratch.environment)
        }
        guard case .includeTooDeep(let location, let limit) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        #expect(limit == 16)
        #expect(location.line == 1)
    }

    @Test func errorInIncludedFileNamesThatFile() throws {
        let scratch = try ScratchDirectory()
        try scratch.write(".ssh/bad.conf", "Host x\n\n  Port nope\n")
        let error = #expect(throws: SSHConfigError.self) {
            try SSHConfigFile.parse("Include bad.conf\n", path: "main", environment: scratch.environment)
        }
        #expect(error?.description.hasPrefix(scratch.path + "/.ssh/bad.conf:3: ") == true)
    }
}
