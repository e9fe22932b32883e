#!/bin/sh
exec tar czf /var/backups/etc.tgz /etc
