using System.Diagnostics;

namespace Hypervisor.Devices.Tests.Qemu;

/// <summary>
/// Runs tiny real-mode firmware images on <c>qemu-system-x86_64</c> (the reference machine of guest-contract.md) and
/// returns what they wrote to the debug console, so device tests can compare our devices with QEMU's.
/// </summary>
internal static class QemuRunner
{
    public const string Executable = "qemu-system-x86_64";

    public static string? FindQemu()
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            string candidate = Path.Combine(dir, Executable);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Builds a 64 KiB image whose reset vector jumps to <paramref name="code"/> at the image's offset 0.</summary>
    public static byte[] BuildFirmware(ReadOnlySpan<byte> code)
    {
        byte[] image = new byte[64 * 1024];
        Array.Fill(image, (byte)0xF4); // HLT
        code.CopyTo(image);
        // At the reset vector (image offset 0xFFF0, CS base 0xFFFF0000): JMP rel16 to offset 0 of the same segment.
        int rel = (0 - 0xFFF3) & 0xFFFF;
        image[0xFFF0] = 0xE9;
        image[0xFFF1] = (byte)rel;
        image[0xFFF2] = (byte)(rel >> 8);
        return image;
    }

    /// <summary>Runs the image and returns the bytes written to debugcon port 0xE9.</summary>
    public static byte[] RunAndCaptureDebugcon(byte[] firmware, string extraArguments, string serial = "none")
    {
        string qemu = FindQemu() ?? throw new InvalidOperationException("QEMU is not installed.");
        string dir = Directory.CreateTempSubdirectory("hv-devices-qemu-").FullName;
        try
        {
            string fw = Path.Combine(dir, "fw.bin");
            string output = Path.Combine(dir, "debugcon.bin");
            File.WriteAllBytes(fw, firmware);
            var psi = new ProcessStartInfo(qemu)
            {
                Arguments = $"-accel tcg -bios \"{fw}\" -display none -serial {serial} -monitor none -no-reboot " +
                            $"-device isa-debug-exit -debugcon file:\"{output}\" {extraArguments}",
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            using Process p = Process.Start(psi)!;
            if (!p.WaitForExit(30_000))
            {
                p.Kill(entireProcessTree: true);
                throw new TimeoutException("QEMU did not finish within 30 s.");
            }

            return File.Exists(output) ? File.ReadAllBytes(output) : [];
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Real-mode code that reads each port once (IN AL, DX) and writes the byte to port 0xE9, then exits.</summary>
    public static byte[] PortDumpCode(IEnumerable<ushort> ports)
    {
        var code = new List<byte>();
        foreach (ushort port in ports)
        {
            code.AddRange([0xBA, (byte)port, (byte)(port >> 8), 0xEC, 0xE6, 0xE9]); // mov dx, port; in al, dx; out 0xe9, al
        }

        code.AddRange([0xBA, 0x01, 0x05, 0xB0, 0x00, 0xEE, 0xF4]); // mov dx, 0x501; mov al, 0; out dx, al; hlt
        return code.ToArray();
    }

    /// <summary>
    /// Real-mode code that first writes the given CMOS registers, then reads the given ones (each to port 0xE9), then
    /// exits through isa-debug-exit.
    /// </summary>
    public static byte[] CmosWriteThenReadCode(IEnumerable<(byte Index, byte Value)> writes, IEnumerable<byte> reads)
    {
        var code = new List<byte>();
        foreach ((byte index, byte value) in writes)
        {
            code.AddRange([0xB0, index, 0xE6, 0x70, 0xB0, value, 0xE6, 0x71]); // mov al, i; out 0x70, al; mov al, v; out 0x71, al
        }

        foreach (byte index in reads)
        {
            code.AddRange([0xB0, index, 0xE6, 0x70, 0xE4, 0x71, 0xE6, 0xE9]); // mov al, i; out 0x70, al; in al, 0x71; out 0xe9, al
        }

        code.AddRange([0xBA, 0x01, 0x05, 0xB0, 0x00, 0xEE, 0xF4]);
        return code.ToArray();
    }

    /// <summary>Real-mode code that writes CMOS bytes 0-127 to port 0xE9, then exits through isa-debug-exit.</summary>
    public static byte[] CmosDumpCode()
    {
        byte[] code =
        [
            0x31, 0xC9,             // xor cx, cx
            0x88, 0xC8,             // mov al, cl
            0xE6, 0x70,             // out 0x70, al
            0xE4, 0x71,             // in al, 0x71
            0xE6, 0xE9,             // out 0xe9, al
            0x41,                   // inc cx
            0x81, 0xF9, 0x80, 0x00, // cmp cx, 0x80
            0x75, 0xF1,             // jne -15 (to mov al, cl)
            0xBA, 0x01, 0x05,       // mov dx, 0x501
            0xB0, 0x00,             // mov al, 0
            0xEE,                   // out dx, al
            0xF4,                   // hlt
        ];
        return code;
    }
}
