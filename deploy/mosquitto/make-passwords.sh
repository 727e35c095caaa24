#!/bin/sh
# Generate MQTT credentials: one random password per user, and mosquitto's hashed password file.
#
# Usage: make-passwords.sh DIR [USER ...]
#
# DIR/USER.password holds each user's password (created once, never overwritten, so running
# the script again only adds the users it is given); DIR/passwords is rebuilt from all of them
# with mosquitto_passwd. The broker reads DIR/passwords; each client reads its own USER.password.
# docker-compose.yml runs this in the mqtt-credentials service (POSIX sh: the broker image's
# busybox); it runs as well on a host with mosquitto installed (Debian: apt-get install mosquitto).
#
# Owners, when run as root: the password file goes to MOSQUITTO_UID (1883, the broker image's
# mosquitto user), the client passwords to CLIENT_UID (10001, the DCTLink images' user).
set -eu

if [ "$#" -lt 1 ]; then
  echo "usage: $0 DIR [USER ...]" >&2
  exit 2
fi
dir=$1
shift
mosquitto_uid=${MOSQUITTO_UID:-1883}
client_uid=${CLIENT_UID:-10001}
umask 077
mkdir -p "$dir"

for user in "$@"; do
  case $user in
    '' | *[!A-Za-z0-9._-]*)
      echo "error: user '$user': use letters, digits, '.', '_' or '-' (it is a topic level)" >&2
      exit 2
      ;;
  esac
  if [ ! -s "$dir/$user.password" ]; then
    # 32 characters from [A-Za-z0-9]: about 190 bits. tr ends the pipe early; that is expected.
    password=$(LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
    printf '%s\n' "$password" >"$dir/$user.password"
    echo "created $user ($dir/$user.password)"
  fi
done

# Rebuild the hashed file from every user's password; -U hashes it in place, so no password
# ever appears on a command line.
plain="$dir/passwords.tmp"
: >"$plain"
for file in "$dir"/*.password; do
  [ -e "$file" ] || continue
  user=$(basename "$file" .password)
  printf '%s:%s\n' "$user" "$(head -n 1 "$file")" >>"$plain"
done
if [ ! -s "$plain" ]; then
  rm -f "$plain"
  echo "error: no users in $dir; name at least one: $0 $dir receiver cam-1" >&2
  exit 2
fi
mosquitto_passwd -U "$plain"
mv "$plain" "$dir/passwords"

if [ "$(id -u)" = 0 ]; then
  chmod 0711 "$dir" # other users may open the files their mode allows, not list them
  chown "$mosquitto_uid:$mosquitto_uid" "$dir/passwords"
  chmod 0600 "$dir/passwords"
  for file in "$dir"/*.password; do
    chown "$client_uid:$client_uid" "$file"
    chmod 0400 "$file"
  done
fi
echo "wrote $dir/passwords ($(wc -l <"$dir/passwords" | tr -d ' ') users)"
