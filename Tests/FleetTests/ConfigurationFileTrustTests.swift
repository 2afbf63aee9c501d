import Foundation
import Testing

@testable import Fleet

/// Inventories others could write are refused with the fix, as OpenSSH's StrictModes does.
@Suite("Configuration files others could write are refused")
struct ConfigurationFileTrustTests {
    static func directory() throws -> String {
        let path = NSTemporaryDirectory() + "govuk-fab-trust-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(
            atPath: path, withIntermediateDirectories: false,
            attributes: [.posixPermissions: 0o755])
        return path
    }

    static let inventory = "name: trust\nhosts:\n  - {name: cache-1, address: 10.0.0.1}\n"

    @Test func aPrivateInventoryLoads() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/trust.yml"
        try Self.inventory.write(toFile: file, atomically: false, encoding: .utf8)
        chmod(file, 0o644)
        #expect(try InventoryLoader.load(file: file).hosts.map(\.name) == ["cache-1"])
    }

    @Test(arguments: [0o666, 0o664, 0o646])
    func aWritableInventoryIsRefusedWithTheFix(_ mode: Int) throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/trust.yml"
        try Self.inventory.write(toFile: file, atomically: false, encoding: .utf8)
        chmod(file, mode_t(mode))
        let error = #expect(throws: InventoryError.self) { try InventoryLoader.load(file: file) }
        #expect(error.map { "\($0)" }?.contains("chmod go-w \(file)") == true, "\(String(describing: error))")
    }

    @Test("a file in a directory others can write is refused; a sticky directory such as /tmp is not")
    func theDirectoryCountsToo() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/trust.yml"
        try Self.inventory.write(toFile: file, atomically: false, encoding: .utf8)
        chmod(file, 0o644)
        chmod(directory, 0o777)
        let error = #expect(throws: InventoryError.self) { try InventoryLoader.load(file: file) }
        #expect(error.map { "\($0)" }?.contains("chmod go-w \(directory)") == true)
        chmod(directory, 0o1777)
        #expect(ConfigurationFileTrust.problem(with: file) == nil)
    }

    @Test("another user's file is refused")
    func anotherUsersFile() throws {
        guard geteuid() == 0 else { return } // only root can give a file away
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/trust.yml"
        try Self.inventory.write(toFile: file, atomically: false, encoding: .utf8)
        chmod(file, 0o644)
        #expect(chown(file, 65534, 65534) == 0)
        #expect(ConfigurationFileTrust.problem(with: file)?.contains("belongs to another user") == true)
    }
}
