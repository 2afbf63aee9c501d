import Foundation
import Testing

@testable import SSHConfig

/// Resolves the same files with the real OpenSSH client (`ssh -G`, which prints the
/// configuration it would use without connecting) and with `SSHConfigFile`, and compares.
@Suite("Agrees with OpenSSH's ssh -G", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/ssh")))
struct OpenSSHDifferentialTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var config: String
        var host: String
        var user: String?
        var testDescription: String { "\(host)\(user.map { " -l \($0)" } ?? ""): \(config.prefix(40))" }
    }

    static let corpus: [String] = [
        """
        Host "quoted host" web?
          IdentityFile ~/.ssh/id_%h_%r
          IdentityFile=/k/%u-%d
        Host !web3 web*
          HostName %h.Example.COM
          User alice
          ProxyJump jump@gw1:2222,[::1]:23,gw3
          UserKnownHostsFile /a/%h /b
          ConnectTimeout 1m
          ServerAliveInterval 15
          StrictHostKeyChecking off
          IdentitiesOnly yes
        Match host web2.example.com
          Port 2
        Host *
          Port 22
          ProxyJump none
        """,
        """
        Host jump*
          ProxyJump none
          StrictHostKeyChecking yes
        Host *.internal !cache-3.internal
          ProxyJump ops@jumpbox-1:2201
          User deploy
          ServerAliveCountMax 9
        Match user deploy
          Port 2022
          StrictHostKeyChecking accept-new
        Match !localuser nobody originalhost cache-*
          ConnectTimeout 1h30m
        Host *
          User=fallback
          Port = 2200
          ServerAliveInterval "2m"
        """,
        """
        Match host CACHE-*,!cache-9 user root
          Port 4000
        Host Cache-1
          Port 4001
        Host cache-?
          Port 4002
          IdentitiesOnly no
        Match all
          StrictHostKeyChecking ask
          ConnectTimeout none
          ConnectTimeout 5
        """,
        // @DIR@ is the scratch directory, which also holds inc.conf (see `included`).
        """
        Host web* cache-?
          Include @DIR@/inc.conf
          Port 3000
        Host x
          Include @DIR@/inc.conf
        Host *
          User base
        """,
    ]

    static let included = """
        ServerAliveCountMax 7
        Host web3 x
          User three
          ProxyJump a@b:5
        Match host cache-*
          Port 3100
        """

    static let cases: [Case] = {
        let hosts = [
            "web1", "web3", "web22", "jumpbox", "cache-1.internal", "cache-3.internal",
            "cache-1", "Cache-1", "cache-9", "x",
        ]
        var out: [Case] = []
        for config in corpus {
            for host in hosts {
                out.append(Case(config: config, host: host, user: nil))
            }
            out.append(Case(config: config, host: "cache-1.internal", user: "deploy"))
            out.append(Case(config: config, host: "web2", user: "carol"))
        }
        return out
    }()

    @Test(arguments: cases)
    func agrees(_ row: Case) throws {
        let scratch = try ScratchDirectory()
        try scratch.write("inc.conf", Self.included)
        try scratch.write("config", row.config.replacingOccurrences(of: "@DIR@", with: scratch.path))
        let path = scratch.path + "/config"
        let openssh = try Self.sshG(config: path, host: row.host, user: row.user)
        let environment = SSHConfigEnvironment.current()
        let ours = try SSHConfigFile.load(path: path, environment: environment).resolve(host: row.host, user: row.user)

        #expect(ours.hostName == openssh["hostname"]?.first)
        #expect((ours.user ?? environment.localUser) == openssh["user"]?.first)
        #expect(String(ours.port ?? 22) == openssh["port"]?.first)
        #expect(((ours.identitiesOnly ?? false) ? "yes" : "no") == openssh["identitiesonly"]?.first)
        let strict: String
        switch ours.strictHostKeyChecking {
        case nil, .ask?: strict = "ask"
        case .yes?: strict = "true"
        case .no?: strict = "false"
        case .acceptNew?: strict = "accept-new"
        }
        #expect(strict == openssh["stricthostkeychecking"]?.first)
        #expect(
            (ours.connectTimeout.map { String($0.components.seconds) } ?? "none") == openssh["connecttimeout"]?.first)
        #expect(
            (ours.serverAliveInterval.map { String($0.components.seconds) } ?? "0")
                == openssh["serveraliveinterval"]?.first)
        #expect(String(ours.serverAliveCountMax ?? 3) == openssh["serveralivecountmax"]?.first)
        let jumps = ours.proxyJump.flatMap { $0.isEmpty ? nil : $0.map(\.description).joined(separator: ",") }
        #expect(jumps == openssh["proxyjump"]?.first)
        if let files = ours.userKnownHostsFiles {
            #expect(files.joined(separator: " ") == openssh["userknownhostsfile"]?.first)
        }
        if !ours.identityFiles.isEmpty {
            // ssh -G prints IdentityFile before token expansion; compare how many and the order.
            #expect(ours.identityFiles.count == openssh["identityfile"]?.count)
        }
    }

    /// `ssh -G` output as keyword → values (a keyword may repeat, e.g. identityfile).
    static func sshG(config: String, host: String, user: String?) throws -> [String: [String]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh")
        var arguments = ["-G", "-F", config]
        if let user { arguments += ["-l", user] }
        process.arguments = arguments + [host]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "ssh -G failed for \(host)")
        var result: [String: [String]] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            result[String(line[..<space]), default: []].append(String(line[line.index(after: space)...]))
        }
        return result
    }
}
