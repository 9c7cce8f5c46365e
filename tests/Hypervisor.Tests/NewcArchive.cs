using System.Globalization;
using System.Text;

namespace Hypervisor.Tests;

/// <summary>
/// Writes a "newc" cpio archive, the initramfs format the kernel unpacks (Documentation/driver-api/early-userspace/
/// buffer-format.rst): per entry a 110-byte ASCII header ("070701" and 13 eight-digit hex fields), the name with its
/// zero, padding to 4 bytes, the data, padding to 4 bytes; "TRAILER!!!" ends it.
/// </summary>
internal sealed class NewcArchive
{
    private readonly MemoryStream _stream = new();
    private uint _inode = 1;

    public void AddDirectory(string name, int permissions = 0x1ED) => Add(name, 0x4000 | permissions, [], 0, 0, nlink: 2);

    public void AddFile(string name, byte[] data, int permissions = 0x1ED) => Add(name, 0x8000 | permissions, data, 0, 0, nlink: 1);

    public void AddSymlink(string name, string target) => Add(name, 0xA000 | 0x1FF, Encoding.ASCII.GetBytes(target), 0, 0, nlink: 1);

    public void AddCharDevice(string name, int major, int minor, int permissions = 0x180) =>
        Add(name, 0x2000 | permissions, [], major, minor, nlink: 1);

    public byte[] Finish()
    {
        Add("TRAILER!!!", 0, [], 0, 0, nlink: 1, inode: 0);
        return _stream.ToArray();
    }

    private void Add(string name, int mode, byte[] data, int rdevMajor, int rdevMinor, int nlink, uint? inode = null)
    {
        var header = new StringBuilder("070701");
        foreach (long field in new long[]
                 {
                     inode ?? _inode++, mode, 0, 0, nlink, 0, data.Length, 0, 0, rdevMajor, rdevMinor, name.Length + 1, 0,
                 })
        {
            header.Append(field.ToString("X8", CultureInfo.InvariantCulture));
        }

        Write(Encoding.ASCII.GetBytes(header.ToString()));
        Write(Encoding.ASCII.GetBytes(name + "\0"));
        Pad();
        Write(data);
        Pad();
    }

    private void Write(byte[] bytes) => _stream.Write(bytes);

    private void Pad()
    {
        while (_stream.Length % 4 != 0)
        {
            _stream.WriteByte(0);
        }
    }
}
