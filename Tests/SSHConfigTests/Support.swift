import Foundation
import Testing

@testable import SSHConfig

/// A fixed local environment so expansions are predictable.
let testEnvironment = SSHConfigEnvironment(
    homeDirectory: "/home/tester", localUser: "tester",
    localHostName: "workstation.example.org", userID: 1000)

func parse(_ text: String, environment: SSHConfigEnvironment = testEnvironment) throws -> SSHConfigFile {
    try SSHConfigFile.parse(text, path: "test.conf", environment: environment)
}

/// A scratch directory, removed when the value goes away.
final class ScratchDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "sshconfig-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path + "/.ssh/config.d", withIntermediateDirectories: true)
    }

    func write(_ relative: String, _ text: String) throws {
        let full = path + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: true, encoding: .utf8)
    }

    var environment: SSHConfigEnvironment {
        SSHConfigEnvironment(homeDirectory: path, localUser: "tester", localHostName: "ws", userID: 1000)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
