/* volctl lab guest init: the whole userland of the lab's tiny base image.
 *
 * It exists so that end-to-end tests can watch a real Linux guest react to volctl:
 *   - loads the modules listed in /mods/order (virtio, virtio-net, virtio-scsi, ACPI button,
 *     evdev);
 *   - prints "VOLCTL-GUEST: ready" on the serial console once it runs;
 *   - prints "VOLCTL-GUEST: blocks <dev[:serial]>..." whenever the set of block devices
 *     changes (virtio disks show their <serial>), so a hot-plug or detach is visible in the
 *     console log;
 *   - prints "VOLCTL-GUEST: nics <ifname:mac>..." whenever the set of network interfaces
 *     changes (loopback left out), so a NIC hot-plug or unplug shows its MAC;
 *   - powers off on the ACPI power button (virDomainShutdown), after printing
 *     "VOLCTL-GUEST: poweroff".
 * The kernel itself acknowledges ACPI PCI hot-unplug, which lets virtio detach complete. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_EVDEV 16

static void load_modules(void) {
  FILE *f = fopen("/mods/order", "r");
  char name[128];
  if (!f) { printf("VOLCTL-GUEST: no /mods/order\n"); return; }
  while (fgets(name, sizeof name, f)) {
    name[strcspn(name, "\r\n")] = 0;
    if (!name[0]) continue;
    char path[192];
    snprintf(path, sizeof path, "/mods/%s.ko", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0)
      printf("VOLCTL-GUEST: module %s failed\n", name);
    if (fd >= 0) close(fd);
  }
  fclose(f);
}

static void read_serial(const char *dev, char *out, size_t n) {
  char path[300];
  out[0] = 0;
  snprintf(path, sizeof path, "/sys/block/%s/serial", dev);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t r = read(fd, out, n - 1);
  close(fd);
  if (r <= 0) { out[0] = 0; return; }
  out[r] = 0;
  out[strcspn(out, "\r\n ")] = 0;
}

static void block_list(char *cur, size_t n) {
  DIR *d = opendir("/sys/block");
  struct dirent *e;
  cur[0] = 0;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char serial[64], item[200];
    read_serial(e->d_name, serial, sizeof serial);
    snprintf(item, sizeof item, serial[0] ? " %s:%s" : " %s", e->d_name, serial);
    if (strlen(cur) + strlen(item) + 1 < n) strcat(cur, item);
  }
  if (d) closedir(d);
}

static void nic_list(char *cur, size_t n) {
  DIR *d = opendir("/sys/class/net");
  struct dirent *e;
  cur[0] = 0;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.' || !strcmp(e->d_name, "lo")) continue;
    char path[300], mac[64] = "", item[400];
    snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t r = read(fd, mac, sizeof mac - 1);
      close(fd);
      mac[r > 0 ? r : 0] = 0;
      mac[strcspn(mac, "\r\n ")] = 0;
    }
    snprintf(item, sizeof item, " %s:%s", e->d_name, mac);
    if (strlen(cur) + strlen(item) + 1 < n) strcat(cur, item);
  }
  if (d) closedir(d);
}

static int evfd[MAX_EVDEV];

static void open_input(void) {
  for (int i = 0; i < MAX_EVDEV; i++) {
    if (evfd[i] >= 0) continue;
    char path[64];
    snprintf(path, sizeof path, "/dev/input/event%d", i);
    evfd[i] = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  }
}

static int power_pressed(void) {
  struct input_event ev;
  for (int i = 0; i < MAX_EVDEV; i++) {
    if (evfd[i] < 0) continue;
    while (read(evfd[i], &ev, sizeof ev) == (ssize_t)sizeof ev)
      if (ev.type == EV_KEY && ev.code == KEY_POWER && ev.value == 1) return 1;
  }
  return 0;
}

int main(void) {
  mount("devtmpfs", "/dev", "devtmpfs", 0, 0);
  mount("proc", "/proc", "proc", 0, 0);
  mount("sysfs", "/sys", "sysfs", 0, 0);
  int c = open("/dev/console", O_WRONLY);
  if (c >= 0) { dup2(c, 1); dup2(c, 2); }
  setvbuf(stdout, 0, _IONBF, 0);
  for (int i = 0; i < MAX_EVDEV; i++) evfd[i] = -1;
  load_modules();
  printf("VOLCTL-GUEST: ready\n");
  char last[2048] = "?", cur[2048], last_nics[2048] = "?", nics[2048];
  for (unsigned tick = 0;; tick++) {
    block_list(cur, sizeof cur);
    if (strcmp(cur, last)) {
      printf("VOLCTL-GUEST: blocks%s\n", cur);
      strcpy(last, cur);
    }
    nic_list(nics, sizeof nics);
    if (strcmp(nics, last_nics)) {
      printf("VOLCTL-GUEST: nics%s\n", nics);
      strcpy(last_nics, nics);
    }
    if (tick % 10 == 0) open_input();
    if (power_pressed()) {
      printf("VOLCTL-GUEST: poweroff\n");
      sync();
      reboot(RB_POWER_OFF);
    }
    usleep(100000);
  }
}
